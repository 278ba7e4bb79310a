"""The Today page: a manager's home, fresh within seconds and consistent with Live.

Visitors are people crossing the store's lines inwards. The buckets the minute
analysis has closed come from ``agg_footfall``; the open part of the day since the
last analysed bucket is counted here from its track points (the engine's own
fusion, staff split and line crossings), so the headline does not lag five minutes.
"In store now" and the queues are the same snapshot as Live (:func:`webui.live.live_snapshot`).
The comparison is the same weekday a week ago, up to the same time of day.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd

from appliance.alerts import active_alerts
from appliance.analytics.coverage import coverage_by_period
from appliance.analytics.engine import BUCKET_MS, split_staff
from appliance.analytics.fusion import fuse
from appliance.analytics.metrics import MetricSettings, line_crossings
from appliance.analytics.rollups import period_bounds
from appliance.config import BoxConfig
from local_db.aggregates import footfall_per_period
from local_db.observations import points_between
from webui.auth import requires
from webui.blueprint import Scope, bp, render_page, scope
from webui.charts import align, chart, series
from webui.db import read_db
from webui.hours import OpenNow, day_span, open_now
from webui.live import Occupancy, live_snapshot, queue_rows
from webui.periods import add_local_days, local, local_midnight_ms

POLL_MS = 10_000
#: the open part counted from track points: at most this long (longer: the analysis is behind)
OPEN_SPAN_MAX_MS = 15 * 60_000
#: track points before the open part, so that a crossing right after it has a side to flip from
CROSSING_LOOKBACK_MS = 60_000


@dataclass(frozen=True)
class Visitors:
    """Visitors so far today, and where the count comes from.

    Attributes:
        total: people in since the day began (None: no data at all yet today).
        analysed: of these, in the buckets the minute analysis closed.
        open_part: of these, counted from track points since ``analysed_until``
            (None: that part could not be counted, the analysis is behind).
        analysed_until: the end of the newest analysed bucket today (None: none yet).
        last_week: people in on the same weekday a week ago up to the same time
            (None: no data then).
        last_week_until: the time of day that comparison ends at (UTC ms, a week ago).
    """

    total: int | None
    analysed: int
    open_part: int | None
    analysed_until: int | None
    last_week: int | None
    last_week_until: int

    @property
    def change_pct(self) -> float | None:
        """The change against last week in % (None when either side has no data)."""
        if self.total is None or not self.last_week:
            return None
        return 100 * (self.total - self.last_week) / self.last_week


def day_bounds(config: BoxConfig, now_ms: int, hours: OpenNow) -> tuple[int, int]:
    """Today's chart range: whole hours from opening to closing (midnight to midnight without)."""
    tz = config.store.timezone
    midnight = local_midnight_ms(now_ms, tz)
    span = hours.span or day_span(config.store, local(now_ms, tz).date())
    if span is None:
        return midnight, add_local_days(midnight, 1, tz)
    t0 = span[0] - (span[0] - midnight) % 3_600_000
    return t0, span[1] + (-(span[1] - midnight)) % 3_600_000


def analysed_until(conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int) -> int | None:
    """The end of the newest bucket of ``[t0, t1)`` the analysis wrote (None: none)."""
    row = conn.execute(
        "SELECT max(bucket_ms) FROM agg_windows WHERE store_id = ? AND bucket_ms >= ? "
        "AND bucket_ms < ?",
        (store_id, t0_ms, t1_ms),
    ).fetchone()
    return None if row[0] is None else int(row[0]) + BUCKET_MS


def people_in(conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int) -> int | None:
    """People in over the buckets of ``[t0, t1)`` (None: no bucket there has rows)."""
    if t1_ms <= t0_ms:
        return None
    got = footfall_per_period(conn, store_id, [(t0_ms, t0_ms, t1_ms)], "in")
    return None if got.empty or pd.isna(got["n"].iloc[0]) else int(got["n"].iloc[0])


def entries_since(conn: sqlite3.Connection, config: BoxConfig, t0_ms: int, now_ms: int) -> int:
    """Customers crossing a line inwards in ``[t0, now)``, from the track points (as the engine)."""
    points = points_between(conn, t0_ms - CROSSING_LOOKBACK_MS, now_ms)
    if points.empty or not config.lines:
        return 0
    staff_zones = [z for z in config.zones if z.kind == "staff_only"]
    customers, _ = split_staff(fuse(points), staff_zones)
    settings = MetricSettings()
    n = 0
    for ln in config.lines:
        c = line_crossings(customers, ln.id, ln.a, ln.b, ln.in_side, settings)
        t = c["t_ms"]
        n += int(((c["direction"] == "in") & (t >= t0_ms) & (t < now_ms)).sum())
    return n


def visitors(conn: sqlite3.Connection, s: Scope, t0_ms: int) -> Visitors:
    """Visitors from ``t0`` (the day's start) to now, and a week ago to the same time."""
    until = analysed_until(conn, s.store_id, t0_ms, s.now_ms)
    analysed = people_in(conn, s.store_id, t0_ms, until) if until is not None else None
    start = until if until is not None else t0_ms
    open_part: int | None = 0  # a replay may have analysed past now: nothing is open then
    if s.now_ms > start:
        late = s.now_ms - start > OPEN_SPAN_MAX_MS
        open_part = None if late else entries_since(conn, s.config, start, s.now_ms)
    counted = [n for n in (analysed, open_part) if n is not None]
    total = sum(counted) if (until is not None or open_part) else None
    week_ago = add_local_days(s.now_ms, -7, s.tz)
    last_t0 = add_local_days(t0_ms, -7, s.tz)
    last = people_in(conn, s.store_id, last_t0, week_ago - week_ago % BUCKET_MS)
    return Visitors(total, analysed or 0, open_part, until, last, week_ago)


def hourly(
    conn: sqlite3.Connection, s: Scope, t0_ms: int, t1_ms: int, v: Visitors
) -> dict[str, Any]:
    """The hourly chart of today (the open part added to its hour) with last week behind it."""
    bounds = period_bounds(t0_ms, t1_ms, "hour", s.tz)
    cov = coverage_by_period(conn, s.store_id, t0_ms, t1_ms, s.closed_ms, "hour", s.tz)
    ins = footfall_per_period(conn, s.store_id, bounds, "in")
    keys = cov.index
    values = ins.set_index("key")["n"] if len(ins) else pd.Series(dtype=float)
    status = cov["status"].copy()
    now_v = align(values, keys, status, 0.0)
    hour_now = max((i for i, (_, a, _) in enumerate(bounds) if a <= s.now_ms), default=None)
    if v.open_part and hour_now is not None and s.now_ms < t1_ms:
        now_v[hour_now] = (now_v[hour_now] or 0) + v.open_part
    lw_t0, lw_t1 = add_local_days(t0_ms, -7, s.tz), add_local_days(t1_ms, -7, s.tz)
    lw_cov = coverage_by_period(conn, s.store_id, lw_t0, lw_t1, s.closed_ms, "hour", s.tz)
    lw_ins = footfall_per_period(conn, s.store_id, period_bounds(lw_t0, lw_t1, "hour", s.tz), "in")
    lw_values = lw_ins.set_index("key")["n"] if len(lw_ins) else pd.Series(dtype=float)
    last_v = align(lw_values, lw_cov.index, lw_cov["status"], 0.0)
    last_v = (last_v + [None] * len(keys))[: len(keys)]
    weekday = f"{local(t0_ms, s.tz):%A}"
    lines = [series(f"last {weekday}", last_v, 7, dash=True), series("today", now_v, 0)]
    title = "Visitors per hour, opening to closing"
    c = chart("today-hourly", title, [int(k) for k in keys], lines, list(status), s.tz, "visitors")
    peak = None
    got = [(n, i) for i, n in enumerate(now_v) if n is not None and n > 0]
    if got:
        n, i = max(got, key=lambda p: (p[0], -p[1]))
        peak = (int(keys[i]), int(n))
    return {"chart": c, "peak": peak}


def line_counts(conn: sqlite3.Connection, s: Scope, t0_ms: int) -> dict[str, dict[str, int]]:
    """In and out per line over the analysed buckets since ``t0``."""
    rows = conn.execute(
        "SELECT line_id, direction, sum(count) FROM agg_footfall "
        "WHERE store_id = ? AND bucket_ms >= ? GROUP BY 1, 2 ORDER BY 1, 2",
        (s.store_id, t0_ms),
    ).fetchall()
    counts: dict[str, dict[str, int]] = {ln.id: {"in": 0, "out": 0} for ln in s.config.lines}
    for line_id, direction, n in rows:
        counts.setdefault(line_id, {"in": 0, "out": 0})[direction] = int(n)
    return counts


@bp.get("/")
@requires("view")
def index() -> str:
    """Today at a glance: visitors, in store now, peak hour, the hourly chart, queues, alerts."""
    s = scope()
    conn = read_db()
    hours = open_now(s.config.store, s.now_ms)
    t0, t1 = day_bounds(s.config, s.now_ms, hours)
    v = visitors(conn, s, local_midnight_ms(s.now_ms, s.tz))
    snap = live_snapshot(s.config, s.now_ms)
    at = local(s.now_ms, s.tz)
    midnight = local_midnight_ms(s.now_ms, s.tz)
    return render_page(
        "overview.html", "overview_fragment.html",
        s=s, v=v, hours=hours, closed_text=hours.closed_text(s.tz), poll_ms=POLL_MS,
        occupancy=Occupancy(snap.store_occupancy, s.config.store.capacity),
        queues=queue_rows(s.config, snap), alerts=active_alerts(conn, s.store_id),
        day=hourly(conn, s, t0, t1, v), counts=line_counts(conn, s, midnight),
        updated=f"{at:%H:%M:%S}", last_weekday=f"{at - timedelta(days=7):%a}",
        lag_min=None if v.analysed_until is None else (s.now_ms - v.analysed_until) // 60_000,
    )  # fmt: skip
