"""How much of a time range the cameras saw: per 5-minute bucket, per period, as a strip.

A bucket is ``complete``, ``partial`` (some camera-time was down) or ``missing`` (no
camera up, or never analysed); ``future`` buckets are not closed yet. A period's
status is ``complete`` when every closed bucket in it is, ``missing`` when none has
data, else ``partial``. Pages use it so that a gap never looks like a zero.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.rollups import Period, period_start
from webui.periods import fmt_day_time, local

STATUS_LABELS = {
    "complete": "complete",
    "partial": "partial: some cameras were down",
    "missing": "no data: cameras down or not analysed",
    "future": "not yet",
}
_MAX_STRIP_RUNS = 400


def keys_of(bucket_ms: pd.Series, period: Period | None, tz: str) -> pd.Series:
    """Each bucket's key: itself, or the UTC ms of its local period's start.

    The same keys as :func:`appliance.analytics.rollups.period_start`; for days, weeks
    and months they are found among the few local period starts of the range
    (localised once each) instead of converting every bucket.
    """
    if period is None or bucket_ms.empty:
        return bucket_ms
    if period == "hour":
        return period_start(bucket_ms, period, tz)
    first = pd.Timestamp(int(bucket_ms.min()), unit="ms", tz="UTC").tz_convert(tz)
    last = pd.Timestamp(int(bucket_ms.max()), unit="ms", tz="UTC").tz_convert(tz)
    days = pd.date_range(
        first.tz_localize(None).normalize() - pd.Timedelta(days=31),
        last.tz_localize(None).normalize(),
        freq="D",
    )
    if period == "week":
        days = days[days.day_of_week == 0]
    elif period == "month":
        days = days[days.day == 1]
    local = days.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    edges = (local - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    edges = np.asarray(edges, dtype=np.int64)
    at = np.searchsorted(edges, bucket_ms.to_numpy(np.int64), side="right") - 1
    return pd.Series(edges[at], index=bucket_ms.index)


def bucket_status(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int, closed_ms: int
) -> pd.DataFrame:
    """Every 5-minute bucket of ``[t0, t1)``: ``bucket_ms, status, coverage``.

    Buckets with no ``agg_windows`` row are ``missing``; those ending after
    ``closed_ms`` are ``future``.
    """
    start = t0_ms - t0_ms % BUCKET_MS
    grid = pd.DataFrame({"bucket_ms": np.arange(start, t1_ms, BUCKET_MS, dtype=np.int64)})
    rows = pd.read_sql_query(
        "SELECT bucket_ms, status, coverage FROM agg_windows "
        "WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ?",
        conn,
        params=(store_id, start, t1_ms),
    )
    df = grid.merge(rows, on="bucket_ms", how="left")
    df["status"] = df["status"].fillna("missing")
    df["coverage"] = df["coverage"].fillna(0.0).astype(float)
    future = df["bucket_ms"].to_numpy() + BUCKET_MS > closed_ms
    df.loc[future, "status"] = "future"
    df.loc[future, "coverage"] = np.nan
    return df


def by_period(buckets: pd.DataFrame, period: Period | None, tz: str) -> pd.DataFrame:
    """Bucket statuses combined per key (see module docs): index ``key``.

    Columns: ``expected`` (closed buckets), ``complete``, ``partial``, ``missing``,
    ``coverage`` (mean over closed buckets) and ``status``.
    """
    keys, inverse = np.unique(keys_of(buckets["bucket_ms"], period, tz), return_inverse=True)
    status = buckets["status"].to_numpy(object)
    out = pd.DataFrame(
        {s: np.bincount(inverse, status == s, len(keys)).astype(int) for s in STATUS_LABELS},
        index=pd.Index(keys, name="key"),
    )
    out["expected"] = out[["complete", "partial", "missing"]].sum(axis=1)
    cov = buckets["coverage"].to_numpy(float)
    seen = ~np.isnan(cov)
    total = np.bincount(inverse, np.where(seen, cov, 0.0), len(keys))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["coverage"] = total / np.bincount(inverse, seen, len(keys))
    e, c, m = (out[k].to_numpy() for k in ("expected", "complete", "missing"))
    out["status"] = np.where(
        e == 0, "future", np.where(c == e, "complete", np.where(m == e, "missing", "partial"))
    )
    return out


@dataclass(frozen=True)
class StripRun:
    """One run of equal statuses in a coverage strip (position and width in %)."""

    x_pct: float
    w_pct: float
    status: str
    title: str


@dataclass(frozen=True)
class CoverageSummary:
    """Counts of closed buckets by status, and the strip that draws them."""

    complete: int
    partial: int
    missing: int
    runs: list[StripRun]

    @property
    def closed(self) -> int:
        """Closed buckets in the range."""
        return self.complete + self.partial + self.missing

    @property
    def all_complete(self) -> bool:
        """Whether every closed bucket is complete."""
        return self.partial == 0 and self.missing == 0


def summarise(buckets: pd.DataFrame, tz: str) -> CoverageSummary:
    """Counts and the strip's runs of :func:`bucket_status` rows."""
    status = buckets["status"].to_numpy(object)
    n = len(status)
    counts = {s: int((status == s).sum()) for s in ("complete", "partial", "missing")}
    if n == 0:
        return CoverageSummary(**counts, runs=[])
    starts = np.flatnonzero(np.r_[True, status[1:] != status[:-1]])
    if len(starts) > _MAX_STRIP_RUNS:  # flickering coverage: one run per status change is too many
        starts = starts[:: int(np.ceil(len(starts) / _MAX_STRIP_RUNS))]
    ends = np.r_[starts[1:], n]
    ms = buckets["bucket_ms"].to_numpy()
    runs = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        kinds = set(status[a:b].tolist())
        st = status[a] if len(kinds) == 1 else "partial"
        since, until = local(int(ms[a]), tz), local(int(ms[b - 1]) + BUCKET_MS, tz)
        title = f"{fmt_day_time(since)} – {until:%H:%M}: {STATUS_LABELS[st]}"
        runs.append(StripRun(100 * a / n, 100 * (b - a) / n, str(st), title))
    return CoverageSummary(**counts, runs=runs)
