"""The analytics engine: closed 5-minute windows of track points → aggregate rows.

``analyze_range`` is idempotent: for each 5-minute bucket in the range it deletes
that bucket's aggregate rows and writes them anew in one transaction, so a
recompute (late points, a crash mid-write, a restart) yields the same rows and
never double counts. Points are read with a lookback so visits and queues that
began before the range are complete; each event is attributed to one bucket by
one time (crossing time, visit exit, queue join, next-zone entry).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from appliance.analytics.alert_summary import alert_summaries
from appliance.analytics.fusion import FusionSettings, fuse
from appliance.analytics.geometry import inside
from appliance.analytics.metrics import (
    MetricSettings,
    funnel,
    heatmap,
    line_crossings,
    occupancy_series,
    predicted_waits,
    queue_events,
    transition_pairs,
    zone_visits,
)
from appliance.config import BoxConfig, ZoneConfig
from local_db.aggregates import WindowRow, replace_buckets
from local_db.alert_log import alerts_active_between
from local_db.observations import camera_history, points_between

logger = logging.getLogger(__name__)

BUCKET_MS = 5 * 60 * 1000
LOOKBACK_MS = 30 * 60 * 1000
LOOKAHEAD_MS = 60 * 1000
DWELL_BINS_S = (0, 10, 30, 60, 120, 300, 600, 1800)
STAFF_SHARE = 0.5
FUNNEL_STEPS = ("display", "checkout")


@dataclass
class WindowTables:
    """Aggregate rows for a range of buckets (one DataFrame per table)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    customers: pd.DataFrame = field(default_factory=pd.DataFrame)  # fused, staff removed
    visits: pd.DataFrame = field(default_factory=pd.DataFrame)
    queue_events: dict[str, pd.DataFrame] = field(default_factory=dict)
    crossings: pd.DataFrame = field(default_factory=pd.DataFrame)
    staff_people: int = 0


def buckets(t0_ms: int, t1_ms: int) -> Iterator[int]:
    """Starts of the 5-minute buckets covering [t0, t1)."""
    start = t0_ms - t0_ms % BUCKET_MS
    yield from range(start, t1_ms, BUCKET_MS)


def _bucket(t_ms: pd.Series) -> pd.Series:
    return (t_ms // BUCKET_MS) * BUCKET_MS


def split_staff(fused: pd.DataFrame, staff_zones: list[ZoneConfig]) -> tuple[pd.DataFrame, int]:
    """Drop staff: people who start in, or mostly stay in, ``staff_only`` zones.

    Returns:
        The customers' points and the number of staff people found.
    """
    if fused.empty or not staff_zones:
        return fused, 0
    x, y = fused["x_m"].to_numpy(float), fused["y_m"].to_numpy(float)
    in_staff = np.zeros(len(fused), bool)
    for zone in staff_zones:
        in_staff |= inside(zone.polygon, x, y)
    by = pd.Series(in_staff).groupby(fused["person"].to_numpy())
    staff = by.first() | (by.mean() >= STAFF_SHARE)
    staff_ids = staff.index[staff.to_numpy()]
    return fused[~fused["person"].isin(staff_ids)], len(staff_ids)


def service_point_of(queue: ZoneConfig, config: BoxConfig) -> ZoneConfig | None:
    """The ``service_point`` zone nearest to a queue zone (None: the store has none)."""
    service = [z for z in config.zones if z.kind == "service_point"]
    if not service:
        return None
    qc = np.mean(np.asarray(queue.polygon), axis=0)
    return min(
        service,
        key=lambda z: float(np.linalg.norm(np.mean(np.asarray(z.polygon), axis=0) - qc)),
    )


def compute(
    points: pd.DataFrame,
    config: BoxConfig,
    t0_ms: int,
    t1_ms: int,
    *,
    fusion: FusionSettings | None = None,
    settings: MetricSettings | None = None,
) -> WindowTables:
    """All metrics for the buckets of [t0, t1) from the points given (pure function).

    Args:
        points: ``camera_id, track_id, t_ms, x_m, y_m`` covering [t0 - lookback, t1 + lookahead).
        config: the store config (zones, lines, floor plan).
        t0_ms: first bucket start (aligned to 5 minutes).
        t1_ms: end of the last bucket.
        fusion: cross-camera fusion thresholds.
        settings: metric definitions.
    """
    s = settings or MetricSettings()
    out = WindowTables()
    fused = fuse(points, fusion)
    staff_zones = [z for z in config.zones if z.kind == "staff_only"]
    customers, out.staff_people = split_staff(fused, staff_zones)
    out.customers = customers
    store = config.store.id

    def in_range(t: pd.Series) -> pd.Series:
        return (t >= t0_ms) & (t < t1_ms)

    # footfall per line and direction, by crossing time
    crossings = pd.concat(
        [line_crossings(customers, ln.id, ln.a, ln.b, ln.in_side, s) for ln in config.lines]
        or [pd.DataFrame(columns=["person", "t_ms", "line_id", "direction"])],
        ignore_index=True,
    )
    out.crossings = crossings
    c = crossings[in_range(crossings["t_ms"])]
    out.tables["agg_footfall"] = (
        c.assign(bucket_ms=_bucket(c["t_ms"]))
        .groupby(["bucket_ms", "line_id", "direction"])
        .size()
        .rename("count")
        .reset_index()
    )

    # zone visits and dwell, by exit time
    visit_zones = [z for z in config.zones if z.kind != "staff_only"]
    visits = pd.concat(
        [zone_visits(customers, z.id, z.polygon, s) for z in visit_zones]
        or [pd.DataFrame(columns=["person", "zone_id", "enter_ms", "exit_ms", "dwell_s"])],
        ignore_index=True,
    )
    out.visits = visits
    v = visits[in_range(visits["exit_ms"])]
    out.tables["agg_dwell"] = _dwell_table(v)

    # occupancy per zone and store, 1 s ticks averaged per bucket; a queue's from the
    # lookback on, as its length before the range predicts the waits of early joiners
    occ_rows = []
    lengths: dict[str, pd.Series] = {}
    areas = [("", None, "")] + [(z.id, z.polygon, z.kind) for z in visit_zones]
    for zone_id, polygon, kind in areas:
        start = t0_ms - LOOKBACK_MS if kind == "queue" else t0_ms
        series = occupancy_series(customers, polygon, start, t1_ms)
        if kind == "queue":
            lengths[zone_id] = series
            series = series[series.index >= t0_ms]
        per = series.groupby((series.index // BUCKET_MS) * BUCKET_MS).agg(["mean", "max"])
        occ_rows.append(per.assign(zone_id=zone_id).rename_axis("bucket_ms").reset_index())
    out.tables["agg_occupancy"] = pd.concat(occ_rows, ignore_index=True)

    # queues, by join time
    out.tables["agg_queue"] = _queue_table(customers, config, lengths, t0_ms, t1_ms, s, out)

    # transitions, by the entry time of the next zone
    pairs = transition_pairs(visits)
    pairs = pairs[in_range(pairs["t_ms"])]
    out.tables["agg_transitions"] = (
        pairs.assign(bucket_ms=_bucket(pairs["t_ms"]))
        .groupby(["bucket_ms", "from_zone", "to_zone"])
        .size()
        .rename("count")
        .reset_index()
    )

    # funnel entrance → display → checkout, by the bucket each person came in
    out.tables["agg_funnel"] = _funnel_table(crossings, visits, config, in_range)

    # heatmaps per bucket
    part = customers[in_range(customers["t_ms"])]
    out.tables["agg_heatmap"] = heatmap(
        part.assign(bucket_ms=_bucket(part["t_ms"])),
        config.floor_plan.width_m,
        config.floor_plan.depth_m,
        s,
    )

    for df in out.tables.values():
        df.insert(0, "store_id", store)
    return out


def _funnel_table(
    crossings: pd.DataFrame,
    visits: pd.DataFrame,
    config: BoxConfig,
    in_range: Callable[[pd.Series], pd.Series],
) -> pd.DataFrame:
    columns = ["bucket_ms", "step", "kind", "people"]
    if crossings.empty:
        return pd.DataFrame(columns=columns)
    kinds = {z.id: z.kind for z in config.zones}
    reached = funnel(crossings, visits, kinds, FUNNEL_STEPS)
    start = reached[reached["step"] == 0].set_index("person")["t_ms"]
    reached = reached.assign(came_in=reached["person"].map(start))
    reached = reached[in_range(reached["came_in"])]
    table = (
        reached.assign(bucket_ms=_bucket(reached["came_in"]))
        .groupby(["bucket_ms", "step"])
        .size()
        .rename("people")
        .reset_index()
    )
    table["kind"] = table["step"].map(dict(enumerate(("in", *FUNNEL_STEPS))))
    return table[columns]


def _dwell_table(v: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (bucket, zone), grp in v.assign(bucket_ms=_bucket(v["exit_ms"])).groupby(
        ["bucket_ms", "zone_id"]
    ):
        d = grp["dwell_s"].to_numpy(float)
        hist, _ = np.histogram(d, bins=[*DWELL_BINS_S, np.inf])
        p10, p50, p90 = np.percentile(d, [10, 50, 90])
        rows.append(
            (bucket, zone, len(d), float(d.sum()), p10, p50, p90, json.dumps(hist.tolist()))
        )
    return pd.DataFrame(
        rows,
        columns=["bucket_ms", "zone_id", "visits", "total_s", "p10_s", "p50_s", "p90_s", "hist"],
    )


def _queue_table(
    customers: pd.DataFrame,
    config: BoxConfig,
    lengths: dict[str, pd.Series],
    t0_ms: int,
    t1_ms: int,
    s: MetricSettings,
    out: WindowTables,
) -> pd.DataFrame:
    """Per bucket and queue zone; ``lengths`` are the queues' occupancy series from the lookback."""
    rows = []
    for q in (z for z in config.zones if z.kind == "queue"):
        sp = service_point_of(q, config)
        if sp is None:
            break
        ev = queue_events(customers, q.polygon, sp.polygon, s)
        length = lengths[q.id]
        ev["predicted_s"] = predicted_waits(ev, length) if not ev.empty else pd.Series(dtype=float)
        out.queue_events[q.id] = ev
        ev = ev[(ev["join_ms"] >= t0_ms) & (ev["join_ms"] < t1_ms)]
        length = length[(length.index >= t0_ms)]
        for b in buckets(t0_ms, t1_ms):
            e = ev[(ev["join_ms"] >= b) & (ev["join_ms"] < b + BUCKET_MS)]
            ln = length[(length.index >= b) & (length.index < b + BUCKET_MS)]
            waits = e["wait_s"].dropna().to_numpy(float)
            err = (e["predicted_s"] - e["wait_s"]).abs().dropna()
            rows.append(
                (
                    b,
                    q.id,
                    len(e),
                    int((~e["abandoned"]).sum()),
                    int(e["abandoned"].sum()),
                    float(waits.sum()),
                    float(waits.mean()) if len(waits) else None,
                    float(np.percentile(waits, 90)) if len(waits) else None,
                    float(ln.mean()) if len(ln) else 0.0,
                    int(ln.max()) if len(ln) else 0,
                    float(err.mean()) if len(err) else None,
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "bucket_ms",
            "zone_id",
            "joined",
            "served",
            "abandoned",
            "wait_total_s",
            "mean_wait_s",
            "p90_wait_s",
            "mean_len",
            "max_len",
            "predicted_mae_s",
        ],
    )


def coverage(conn: sqlite3.Connection, config: BoxConfig, b: int) -> float:
    """Fraction of camera-time in bucket ``b`` that cameras were up (1.0 without events)."""
    total = 0.0
    for cam in config.cameras:
        events = camera_history(conn, cam.id, b + BUCKET_MS)
        if not events:
            total += 1.0
            continue
        up_ms, state, t = 0, None, b
        for t_ev, st in events:
            if t_ev > b and state == "up":
                up_ms += t_ev - max(t, b)
            t, state = max(t_ev, b), st
        if state == "up":
            up_ms += b + BUCKET_MS - t
        total += up_ms / BUCKET_MS
    return total / len(config.cameras)


def write_tables(
    conn: sqlite3.Connection, config: BoxConfig, t0_ms: int, t1_ms: int, result: WindowTables
) -> None:
    """Replace the buckets of [t0, t1) with ``result`` in one transaction."""
    people = result.customers.assign(bucket_ms=_bucket(result.customers["t_ms"]))
    per_bucket = (
        people.groupby("bucket_ms")["person"].nunique()
        if not people.empty
        else pd.Series(dtype=int)
    )
    now = int(time.time() * 1000)
    windows = []
    for b in buckets(t0_ms, t1_ms):
        cov = coverage(conn, config, b)
        status: Literal["complete", "partial", "missing"] = (
            "complete" if cov >= 0.999 else ("missing" if cov <= 0.001 else "partial")
        )
        customers = int(per_bucket.get(b, 0))
        windows.append(WindowRow(b, now, cov, status, customers, result.staff_people))
    replace_buckets(conn, config.store.id, t0_ms, t1_ms, result.tables, windows)


def analyze_range(
    conn: sqlite3.Connection, config: BoxConfig, t0_ms: int, t1_ms: int
) -> WindowTables:
    """Recompute (idempotently) every 5-minute bucket in [t0, t1)."""
    t0 = t0_ms - t0_ms % BUCKET_MS
    t1 = t1_ms + (-t1_ms) % BUCKET_MS
    points = points_between(conn, t0 - LOOKBACK_MS, t1 + LOOKAHEAD_MS)
    result = compute(points, config, t0, t1)
    store = config.store.id
    active = alerts_active_between(conn, store, t0, t1)
    result.tables["agg_alerts"] = alert_summaries(active, store, t0, t1, BUCKET_MS)
    write_tables(conn, config, t0, t1, result)
    logger.info("analyzed %d bucket(s) from %d points", (t1 - t0) // BUCKET_MS, len(points))
    return result
