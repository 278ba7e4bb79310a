"""The store metrics, each a vectorised function over fused person trajectories.

Input everywhere: ``fused`` with columns ``person, t_ms, x_m, y_m`` (one point per
person per step, see :mod:`appliance.analytics.fusion`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from appliance.analytics.fusion import step_seconds, track_ends
from appliance.analytics.geometry import inside, line_side


@dataclass(frozen=True, slots=True)
class MetricSettings:
    """Definitions (documented in the README under "Metrics").

    Attributes:
        hysteresis_m: a line crossing counts only once the person is this far past
            the line on the other side (de-jitter band, half on each side).
        line_margin_m: how far beyond a line's ends a crossing still counts.
        reach_s: a person first (last) seen near a line, walking across it, came from
            (went to) where this much more of their walk back (on) takes them: someone
            who vanishes just short of or just past the door walked out of it.
        min_visit_s: a zone visit shorter than this is a pass-through, not a visit.
        merge_gap_s: leaving a zone for less than this does not end the visit.
        heatmap_cell_m: heatmap grid cell.
        max_step_s: a point stands for at most this many seconds (gaps don't smear).
        service_margin_m: a person is at the service point once this far inside it.
    """

    hysteresis_m: float = 0.3
    line_margin_m: float = 0.5
    reach_s: float = 1.0
    min_visit_s: float = 5.0
    merge_gap_s: float = 3.0
    heatmap_cell_m: float = 0.25
    max_step_s: float = 1.0
    service_margin_m: float = 0.3


def line_crossings(
    fused: pd.DataFrame,
    line_id: str,
    a: tuple[float, float],
    b: tuple[float, float],
    in_side: str,
    settings: MetricSettings,
) -> pd.DataFrame:
    """One row per crossing: ``person, line_id, t_ms, direction`` (``in``/``out``).

    A person's side is +1/-1 once they are ``hysteresis_m / 2`` clear of the line
    and keeps its last value inside the band, so jitter on the line never counts.
    Before a person's first point and after their last, their walk goes on for
    ``reach_s`` at the velocity they had there (see :class:`MetricSettings`).
    """
    walk = _with_reach(fused, settings.reach_s)
    person = walk["person"].to_numpy()
    x, y = walk["x_m"].to_numpy(float), walk["y_m"].to_numpy(float)
    dist, along = line_side(a, b, x, y)
    half = settings.hysteresis_m / 2
    side = pd.Series(np.where(dist > half, 1.0, np.where(dist < -half, -1.0, np.nan)))
    side = side.groupby(person).ffill()
    prev = side.groupby(person).shift(1)
    length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
    margin = settings.line_margin_m / length
    on_segment = (along >= -margin) & (along <= 1 + margin)
    flip = (side.to_numpy() != prev.to_numpy()) & prev.notna().to_numpy() & on_segment
    inward = 1.0 if in_side == "left" else -1.0
    rows = walk.loc[flip, ["person", "t_ms"]].copy()
    rows["line_id"] = line_id
    rows["direction"] = np.where(side.to_numpy()[flip] == inward, "in", "out")
    return rows.reset_index(drop=True)


def _with_reach(fused: pd.DataFrame, reach_s: float, span: int = 10) -> pd.DataFrame:
    """``person, t_ms, x_m, y_m`` with a point before each person's first and after their last.

    The added points lie ``reach_s`` of walking (velocity over ``span`` steps) back from
    the first point and on from the last, at the first and last point's times.
    """
    cols = ["person", "t_ms", "x_m", "y_m"]
    if fused.empty or reach_s <= 0:
        return fused[cols].reset_index(drop=True)
    ends = track_ends(fused[cols], key="person", span=span)
    before = pd.DataFrame(
        {
            "person": ends["person"],
            "t_ms": ends["t_start"],
            "x_m": ends["x_start"] - ends["vx_start"] * reach_s,
            "y_m": ends["y_start"] - ends["vy_start"] * reach_s,
            "order": 0,
        }
    )
    after = pd.DataFrame(
        {
            "person": ends["person"],
            "t_ms": ends["t_end"],
            "x_m": ends["x_end"] + ends["vx_end"] * reach_s,
            "y_m": ends["y_end"] + ends["vy_end"] * reach_s,
            "order": 2,
        }
    )
    walk = pd.concat([before, fused[cols].assign(order=1), after], ignore_index=True)
    walk = walk.sort_values(["person", "t_ms", "order"], kind="stable")
    return walk[cols].reset_index(drop=True)


def zone_visits(
    fused: pd.DataFrame,
    zone_id: str,
    polygon: Sequence[tuple[float, float]],
    settings: MetricSettings,
) -> pd.DataFrame:
    """Visits ``person, zone_id, enter_ms, exit_ms, dwell_s``.

    Definition: a visit runs from the first to the last point inside the polygon;
    absences shorter than ``merge_gap_s`` are bridged; visits shorter than
    ``min_visit_s`` are dropped as pass-throughs.
    """
    isin = inside(polygon, fused["x_m"].to_numpy(float), fused["y_m"].to_numpy(float))
    pts = fused.loc[isin, ["person", "t_ms"]]
    if pts.empty:  # typed, so that merges on an empty zone still work
        return pd.DataFrame(
            {
                "person": pd.Series(dtype=np.int64),
                "zone_id": pd.Series(dtype=object),
                "enter_ms": pd.Series(dtype=np.int64),
                "exit_ms": pd.Series(dtype=np.int64),
                "dwell_s": pd.Series(dtype=float),
            }
        )
    gap = pts.groupby("person")["t_ms"].diff()
    new_visit = gap.isna() | (gap > settings.merge_gap_s * 1000)
    visit_no = new_visit.cumsum()
    v = pts.groupby(visit_no).agg(
        person=("person", "first"), enter_ms=("t_ms", "min"), exit_ms=("t_ms", "max")
    )
    v["dwell_s"] = (v["exit_ms"] - v["enter_ms"]) / 1000
    v = v[v["dwell_s"] >= settings.min_visit_s].reset_index(drop=True)
    v.insert(1, "zone_id", zone_id)
    return v


def occupancy_series(
    fused: pd.DataFrame,
    polygon: Sequence[tuple[float, float]] | None,
    t0_ms: int,
    t1_ms: int,
    period_ms: int = 1000,
) -> pd.Series:
    """People inside ``polygon`` (None: anywhere seen) at each ``period_ms`` tick in [t0, t1).

    A person counts at a tick if their latest point at or before it, no older than one
    period, is inside: the state at that instant, not "anywhere during the second".
    """
    ticks = np.arange(t0_ms, t1_ms, period_ms, dtype=np.int64)
    out = np.zeros(len(ticks), np.int64)
    if fused.empty:
        return pd.Series(out, index=ticks)
    tick = -((t0_ms - fused["t_ms"].to_numpy(np.int64)) // period_ms)  # ceil
    last = fused.assign(tick=tick).drop_duplicates(["person", "tick"], keep="last")
    if polygon is not None:
        last = last[inside(polygon, last["x_m"].to_numpy(float), last["y_m"].to_numpy(float))]
    counts = last.groupby("tick").size()
    valid = counts.index[(counts.index >= 0) & (counts.index < len(ticks))]
    out[valid.to_numpy(dtype=np.int64)] = counts.loc[valid].to_numpy()
    return pd.Series(out, index=ticks)


def transition_pairs(visits: pd.DataFrame, person: str = "person") -> pd.DataFrame:
    """Consecutive distinct zones of each person: ``from_zone, to_zone, t_ms``.

    ``t_ms`` is when the person entered ``to_zone``.
    """
    v = visits.sort_values([person, "enter_ms"])
    nxt = v.groupby(person)
    pairs = pd.DataFrame(
        {
            "from_zone": v["zone_id"].to_numpy(),
            "to_zone": nxt["zone_id"].shift(-1).to_numpy(),
            "t_ms": nxt["enter_ms"].shift(-1).to_numpy(),
        }
    ).dropna()
    pairs = pairs[pairs["from_zone"] != pairs["to_zone"]]
    return pairs.astype({"t_ms": np.int64}).reset_index(drop=True)


def funnel(
    crossings: pd.DataFrame,
    visits: pd.DataFrame,
    zone_kinds: Mapping[str, str],
    steps: Sequence[str],
) -> pd.DataFrame:
    """Ordered funnel: ``person, step, t_ms`` for every step each person reached in order.

    Step 0 is coming in (an ``in`` crossing of any line); step *i* is the first visit of
    a zone of kind ``steps[i - 1]`` that starts after the person reached step *i - 1*.
    """
    came_in = crossings[crossings["direction"] == "in"].groupby("person")["t_ms"].min()
    reached = [came_in.rename("t_ms").reset_index().assign(step=0)]
    current = came_in
    kinds = visits.assign(kind=visits["zone_id"].map(zone_kinds))
    for i, kind in enumerate(steps, start=1):
        v = kinds[kinds["kind"] == kind][["person", "enter_ms"]]
        after = pd.DataFrame({"person": current.index.to_numpy(), "after": current.to_numpy()})
        v = v.merge(after, on="person")
        current = v[v["enter_ms"] > v["after"]].groupby("person")["enter_ms"].min()
        reached.append(current.rename("t_ms").reset_index().assign(step=i))
    return pd.concat(reached, ignore_index=True)[["person", "step", "t_ms"]]


def queue_events(
    fused: pd.DataFrame,
    queue_polygon: Sequence[tuple[float, float]],
    service_polygon: Sequence[tuple[float, float]],
    settings: MetricSettings,
) -> pd.DataFrame:
    """Per queue visit: ``person, join_ms, served_ms, service_end_ms, left_ms, abandoned, wait_s``.

    Joining is entering the queue zone; being served is reaching the service point
    before that visit ends (+ ``merge_gap_s``), however short the wait. A visit that
    never reaches it is abandonment if it lasted ``min_visit_s`` (someone waited and
    gave up), otherwise a walk past, not a queue event.
    """
    columns = ["person", "join_ms", "served_ms", "service_end_ms", "left_ms", "abandoned", "wait_s"]
    every = MetricSettings(
        merge_gap_s=settings.merge_gap_s,
        min_visit_s=0.0,
        service_margin_m=settings.service_margin_m,
    )
    q = zone_visits(fused, "queue", queue_polygon, every)
    if q.empty:
        return pd.DataFrame(columns=columns)
    service = zone_visits(fused, "service", service_polygon, every).sort_values("enter_ms")
    # the service point counts once the person is well inside it: jitter at the queue
    # head, on the shared edge, must not look like being served
    at_service = inside(
        service_polygon,
        fused["x_m"].to_numpy(float),
        fused["y_m"].to_numpy(float),
        margin_m=settings.service_margin_m,
    )
    points = fused.loc[at_service, ["person", "t_ms"]].sort_values("t_ms")
    q = q.sort_values("enter_ms")
    # served = the first moment at the service point after joining (a walk through the
    # service point on the way into the queue does not count)
    matched = pd.merge_asof(
        q,
        points.rename(columns={"t_ms": "served_ms"}),
        left_on="enter_ms",
        right_on="served_ms",
        by="person",
        direction="forward",
        allow_exact_matches=False,
    ).sort_values("served_ms")
    served_at = matched.dropna(subset=["served_ms"]).astype({"served_ms": np.int64})
    ends = pd.merge_asof(
        served_at[["person", "served_ms"]],
        service[["person", "enter_ms", "exit_ms"]],
        left_on="served_ms",
        right_on="enter_ms",
        by="person",
        direction="backward",
    )
    matched["service_end_ms"] = pd.Series(
        ends["exit_ms"].to_numpy(), index=served_at.index
    ).reindex(matched.index)
    in_time = matched["served_ms"] <= matched["exit_ms"] + settings.merge_gap_s * 1000
    served = matched["served_ms"].where(in_time)
    waited = matched["dwell_s"] >= settings.min_visit_s
    keep = served.notna() | waited
    out = pd.DataFrame(
        {
            "person": matched["person"],
            "join_ms": matched["enter_ms"],
            "served_ms": served,
            "service_end_ms": matched["service_end_ms"].where(in_time),
            "left_ms": matched["exit_ms"],
            "abandoned": served.isna(),
            "wait_s": (served - matched["enter_ms"]) / 1000,
        }
    )
    return out.loc[keep, columns].reset_index(drop=True)


def predicted_waits(events: pd.DataFrame, length_at: pd.Series, history: int = 10) -> pd.Series:
    """The wait predicted for each joiner at the moment they join.

    prediction = people already in the queue x the mean service time (time at the
    service point) of the last ``history`` customers served before the join; NaN
    until someone has been served.
    """
    done = events.dropna(subset=["service_end_ms"]).sort_values("service_end_ms")
    ends = done["service_end_ms"].to_numpy(float)
    durations = ((done["service_end_ms"] - done["served_ms"]) / 1000).to_numpy(float)
    preds = []
    for join in events["join_ms"].to_numpy(float):
        n = int(np.searchsorted(ends, join))
        if n == 0:
            preds.append(np.nan)
            continue
        ahead = max(float(length_at.asof(join - 1)) if len(length_at) else 0.0, 0.0)
        preds.append(ahead * float(durations[max(0, n - history) : n].mean()))
    return pd.Series(preds, index=events.index, dtype=float)


def heatmap(
    fused: pd.DataFrame, width_m: float, depth_m: float, settings: MetricSettings
) -> pd.DataFrame:
    """Person-seconds and distinct people per floor cell: ``cell_x, cell_y, person_s, people``.

    With a ``bucket_ms`` column in ``fused``, cells are per bucket too.
    """
    cell = settings.heatmap_cell_m
    cols, rows = int(np.ceil(width_m / cell)), int(np.ceil(depth_m / cell))
    cells = pd.DataFrame(
        {
            "cell_x": np.clip((fused["x_m"].to_numpy(float) / cell).astype(int), 0, cols - 1),
            "cell_y": np.clip((fused["y_m"].to_numpy(float) / cell).astype(int), 0, rows - 1),
            "dt": step_seconds(fused, settings.max_step_s),
            "person": fused["person"].to_numpy(),
        }
    )
    keys = ["cell_x", "cell_y"]
    if "bucket_ms" in fused.columns:
        cells["bucket_ms"] = fused["bucket_ms"].to_numpy()
        keys = ["bucket_ms", *keys]
    return (
        cells.groupby(keys).agg(person_s=("dt", "sum"), people=("person", "nunique")).reset_index()
    )
