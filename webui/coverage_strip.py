"""The coverage strip the pages draw above their charts: runs of bucket statuses, with titles.

The statuses come from :mod:`appliance.analytics.coverage`; this module only lays them
out (a run's position and width in %) and words them in the store's local time.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

from appliance.analytics.coverage import bucket_status
from appliance.analytics.engine import BUCKET_MS
from webui.periods import fmt_day_time, local

STATUS_LABELS = {
    "complete": "complete",
    "partial": "partial: some cameras were down",
    "missing": "no data: cameras down or not analysed",
    "future": "not yet",
}
_MAX_STRIP_RUNS = 400


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
    """Counts and the strip's runs of :func:`appliance.analytics.coverage.bucket_status` rows."""
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


def coverage_strip(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int, closed_ms: int, tz: str
) -> CoverageSummary:
    """The strip of ``[t0, t1)``: every bucket's status (see :func:`bucket_status`) summarised."""
    return summarise(bucket_status(conn, store_id, t0_ms, t1_ms, closed_ms), tz)
