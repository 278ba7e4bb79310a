"""How much of a time range the cameras saw: per 5-minute bucket and per local period.

The engine stores each analysed bucket's coverage (the fraction of camera-time the
cameras were up) in ``agg_windows``. Read back, a bucket is ``complete``, ``partial``
(some camera-time was down) or ``missing`` (no camera up, or never analysed);
``future`` buckets are not closed yet. A period's status is ``complete`` when every
closed bucket in it is, ``missing`` when none has data, ``future`` when none is
closed, else ``partial``. The pages, their CSV downloads and the coverage strips use
it so that a gap never looks like a zero.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.rollups import Period, bucket_grid, period_bounds, period_start
from local_db.aggregates import window_rows, windows_per_period

#: a bucket's or a period's status, in the order of :func:`by_period`'s columns
STATUSES: Final = ("complete", "partial", "missing", "future")


def bucket_status(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int, closed_ms: int
) -> pd.DataFrame:
    """Every 5-minute bucket of ``[t0, t1)``, oldest first: ``bucket_ms, status, coverage``.

    Buckets with no ``agg_windows`` row are ``missing``; those ending after
    ``closed_ms`` are ``future`` (their coverage NaN).
    """
    grid = bucket_grid(t0_ms, t1_ms).to_frame("bucket_ms")
    rows = window_rows(conn, store_id, t0_ms - t0_ms % BUCKET_MS, t1_ms)
    df = grid.merge(rows, on="bucket_ms", how="left")
    df["status"] = df["status"].fillna("missing")
    df["coverage"] = df["coverage"].fillna(0.0).astype(float)
    future = df["bucket_ms"].to_numpy() + BUCKET_MS > closed_ms
    df.loc[future, "status"] = "future"
    df.loc[future, "coverage"] = np.nan
    return df


def _period_status(out: pd.DataFrame) -> npt.NDArray[np.str_]:
    """Each period's status from its ``expected`` (closed), ``complete`` and ``missing`` counts."""
    e, c, m = (out[k].to_numpy() for k in ("expected", "complete", "missing"))
    return np.where(
        e == 0, "future", np.where(c == e, "complete", np.where(m == e, "missing", "partial"))
    )


def by_period(buckets: pd.DataFrame, period: Period | None, tz: str) -> pd.DataFrame:
    """:func:`bucket_status` rows combined per period (see module docs): index ``key``.

    Columns: a count per status (:data:`STATUSES`), ``expected`` (closed buckets),
    ``coverage`` (mean over closed buckets) and ``status``.
    """
    keys, inverse = np.unique(period_start(buckets["bucket_ms"], period, tz), return_inverse=True)
    status = buckets["status"].to_numpy(object)
    out = pd.DataFrame(
        {s: np.bincount(inverse, status == s, len(keys)).astype(int) for s in STATUSES},
        index=pd.Index(keys, name="key"),
    )
    out["expected"] = out[["complete", "partial", "missing"]].sum(axis=1)
    cov = buckets["coverage"].to_numpy(float)
    seen = ~np.isnan(cov)
    total = np.bincount(inverse, np.where(seen, cov, 0.0), len(keys))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["coverage"] = total / np.bincount(inverse, seen, len(keys))
    out["status"] = _period_status(out)
    return out


def coverage_by_period(
    conn: sqlite3.Connection,
    store_id: str,
    t0_ms: int,
    t1_ms: int,
    closed_ms: int,
    period: Period | None,
    tz: str,
) -> pd.DataFrame:
    """Like :func:`by_period` over :func:`bucket_status`, but counted by SQLite.

    Only the sums per period leave the database (:func:`local_db.aggregates.windows_per_period`),
    not a row per bucket: the trends and queues charts of a long window.
    """
    grid = bucket_grid(t0_ms, t1_ms).to_numpy()
    closed = grid + BUCKET_MS <= closed_ms
    # from the first bucket on, even when the window starts inside it
    bounds = period_bounds(t0_ms - t0_ms % BUCKET_MS, t1_ms, period, tz)
    keys = np.array([k for k, _, _ in bounds], dtype=np.int64)
    starts = np.array([a for _, a, _ in bounds], dtype=np.int64)
    inverse = np.searchsorted(starts, grid, side="right") - 1  # each bucket's period
    out = pd.DataFrame(
        {"expected": np.bincount(inverse, closed, len(keys)).astype(int)},
        index=pd.Index(keys, name="key"),
    )
    seen = windows_per_period(conn, store_id, bounds, closed_ms - BUCKET_MS).set_index("key")
    for col in ("complete", "partial", "covered"):
        out[col] = seen[col].reindex(out.index).fillna(0) if len(seen) else 0
    out[["complete", "partial"]] = out[["complete", "partial"]].astype(int)
    out["missing"] = out["expected"] - out["complete"] - out["partial"]
    out["future"] = np.bincount(inverse, ~closed, len(keys)).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["coverage"] = out["covered"] / out["expected"].where(out["expected"] > 0)
    out["status"] = _period_status(out)
    return out[[*STATUSES, "expected", "coverage", "status"]]
