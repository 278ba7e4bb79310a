"""Exact ground truth from simulated trajectories, with shapely geometry only.

Nothing here uses footfall's analytics code: these are the independent answers
the analytics engine is measured against.

Definitions (all times are UTC milliseconds on the sample grid):

* a **line crossing** is a step between two consecutive samples of one person
  whose segment intersects the counting line and whose ends lie on different
  sides of it; ``direction`` is ``in`` when the later sample is on the line's
  ``in_side`` (a point exactly on the line counts as outside); ``t_ms`` is
  interpolated to where the step meets the line.
* a **zone visit** runs from the first sample inside the polygon
  (``shapely.contains_xy``) to the first sample outside it again. A person who
  vanishes inside a zone leaves it one sample period after the last sample; a
  person still inside when the run ends has ``exit_ms`` NA. No minimum, no merging.
* **occupancy** counts the people whose sample at each whole second lies inside
  each zone and inside the store area (``__store__``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon

from appliance.config import LineConfig, ZoneConfig
from lab.sim.geometry import inside_of, line_segment, line_side, zone_shape

STORE_ZONE_ID = "__store__"
"""The ``zone_id`` of whole-store occupancy rows."""


@dataclass(frozen=True, slots=True)
class Samples:
    """Trajectory samples sorted by person then time (parallel arrays)."""

    person: np.ndarray
    tick: np.ndarray
    t_ms: np.ndarray
    x: np.ndarray
    y: np.ndarray
    staff: np.ndarray

    def new_person(self) -> np.ndarray:
        """True at each person's first sample."""
        first = np.ones(len(self.person), dtype=bool)
        first[1:] = self.person[1:] != self.person[:-1]
        return first


def line_crossings(s: Samples, lines: Sequence[LineConfig]) -> pd.DataFrame:
    """Every crossing of every counting line.

    Returns:
        Columns ``person_id, line_id, t_ms, direction``, sorted by time.
    """
    rows: list[pd.DataFrame] = []
    same = ~s.new_person()[1:]
    for line in lines:
        side = line_side(line, s.x, s.y)
        inside = inside_of(line, s.x, s.y)
        change = same & (inside[1:] != inside[:-1])
        idx = np.nonzero(change)[0]
        if len(idx) == 0:
            continue
        steps = shapely.linestrings(
            np.stack(
                [
                    np.column_stack([s.x[idx], s.y[idx]]),
                    np.column_stack([s.x[idx + 1], s.y[idx + 1]]),
                ],
                axis=1,
            )
        )
        hit = shapely.intersects(steps, line_segment(line))
        idx = idx[hit]
        c0, c1 = side[idx], side[idx + 1]
        denom = c0 - c1
        u = np.divide(c0, denom, out=np.zeros_like(c0), where=denom != 0)
        t = s.t_ms[idx] + np.clip(u, 0, 1) * (s.t_ms[idx + 1] - s.t_ms[idx])
        rows.append(
            pd.DataFrame(
                {
                    "person_id": s.person[idx],
                    "line_id": line.id,
                    "t_ms": np.rint(t).astype(np.int64),
                    "direction": np.where(inside[idx + 1], "in", "out"),
                }
            )
        )
    if not rows:
        return pd.DataFrame(
            {
                "person_id": pd.Series(dtype=np.int64),
                "line_id": pd.Series(dtype=object),
                "t_ms": pd.Series(dtype=np.int64),
                "direction": pd.Series(dtype=object),
            }
        )
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values(["t_ms", "person_id", "line_id"], kind="mergesort").reset_index(
        drop=True
    )


def zone_visits(
    s: Samples, zones: Sequence[ZoneConfig], gone_ms: dict[int, int | None], period_ms: float
) -> pd.DataFrame:
    """Every enter→leave of every zone polygon.

    Args:
        s: the samples.
        zones: the zones.
        gone_ms: per person, when they left the simulation (None: still there at the end).
        period_ms: the sample period.

    Returns:
        Columns ``person_id, zone_id, enter_ms, exit_ms`` (``exit_ms`` nullable
        Int64), sorted by ``enter_ms``.
    """
    rows: list[pd.DataFrame] = []
    first = s.new_person()
    last = np.ones(len(s.person), dtype=bool)
    last[:-1] = first[1:]
    for zone in zones:
        poly = zone_shape(zone)
        shapely.prepare(poly)
        inside = shapely.contains_xy(poly, s.x, s.y)
        prev_in = np.zeros_like(inside)
        prev_in[1:] = inside[:-1]
        starts = np.nonzero(inside & (first | ~prev_in))[0]
        if len(starts) == 0:
            continue
        # the end of a run: the first later sample that is outside or a new person
        stop = ~inside | first
        stop_idx = np.nonzero(stop)[0]
        nxt = np.searchsorted(stop_idx, starts, side="right")
        ends = np.where(nxt < len(stop_idx), stop_idx[np.minimum(nxt, len(stop_idx) - 1)], -1)
        exit_ms: list[int | None] = []
        for st, en in zip(starts, ends, strict=True):
            if en >= 0 and not first[en]:
                exit_ms.append(int(s.t_ms[en]))
                continue
            pid = int(s.person[st])
            # the run lasted to the person's last sample
            exit_ms.append(None if gone_ms.get(pid) is None else round(_last_t(s, en) + period_ms))
        rows.append(
            pd.DataFrame(
                {
                    "person_id": s.person[starts],
                    "zone_id": zone.id,
                    "enter_ms": s.t_ms[starts],
                    "exit_ms": pd.array(exit_ms, dtype="Int64"),
                }
            )
        )
    if not rows:
        return pd.DataFrame(
            {
                "person_id": pd.Series(dtype=np.int64),
                "zone_id": pd.Series(dtype=object),
                "enter_ms": pd.Series(dtype=np.int64),
                "exit_ms": pd.Series(dtype="Int64"),
            }
        )
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values(["enter_ms", "person_id", "zone_id"], kind="mergesort").reset_index(
        drop=True
    )


def _last_t(s: Samples, next_run_start: int) -> float:
    """Time of the sample before ``next_run_start`` (or of the very last sample)."""
    i = len(s.t_ms) - 1 if next_run_start < 0 else next_run_start - 1
    return float(s.t_ms[i])


def occupancy(
    s: Samples,
    zones: Sequence[ZoneConfig],
    store_area: Polygon,
    sample_rate_hz: float,
    n_ticks: int,
    start_ms: int,
) -> pd.DataFrame:
    """People inside each zone and the store, every whole second.

    Returns:
        Columns ``t_ms, zone_id, count, staff`` (``staff``: how many of ``count``
        are staff); one row per second per zone, ``__store__`` for the store.
    """
    duration_s = (n_ticks - 1) / sample_rate_hz
    seconds = np.arange(0, int(np.floor(duration_s + 1e-9)) + 1)
    sec_ticks = np.floor(seconds * sample_rate_hz + 1e-9).astype(np.int64)
    pos = np.searchsorted(sec_ticks, s.tick)
    at_second = (pos < len(sec_ticks)) & (sec_ticks[np.minimum(pos, len(sec_ticks) - 1)] == s.tick)
    sec = pos[at_second]
    xs, ys, staff = s.x[at_second], s.y[at_second], s.staff[at_second]
    frames = []
    areas: list[tuple[str, Polygon]] = [(STORE_ZONE_ID, store_area)]
    areas += [(z.id, zone_shape(z)) for z in zones]
    for zone_id, poly in areas:
        shapely.prepare(poly)
        inside = shapely.contains_xy(poly, xs, ys)
        count = np.bincount(sec[inside], minlength=len(seconds))
        staff_count = np.bincount(sec[inside & staff], minlength=len(seconds))
        frames.append(
            pd.DataFrame(
                {
                    "t_ms": start_ms + seconds * 1000,
                    "zone_id": zone_id,
                    "count": count.astype(np.int64),
                    "staff": staff_count.astype(np.int64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
