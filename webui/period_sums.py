"""Aggregate rows summed per local period by SQLite, so only the sums leave the database.

A page that charts a month by day asks for ~30 rows, not 8,640 buckets x zones:
the periods' UTC bounds go in as a ``VALUES`` table and SQLite range-scans each
period on the tables' ``(store_id, bucket_ms, …)`` primary key.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.rollups import Period
from webui.coverage import STATUS_LABELS, keys_of

Bounds = list[tuple[int, int]]


def period_bounds(t0_ms: int, t1_ms: int, period: Period | None, tz: str) -> Bounds:
    """``[(start, end), …]`` of the buckets or local periods that ``[t0, t1)`` covers.

    The first period may start before ``t0`` (a window starting mid-day, by day) but
    its sums only cover ``[t0, …)``: the ends and starts are clipped to the window.
    """
    start = t0_ms - t0_ms % BUCKET_MS
    grid = pd.Series(np.arange(start, t1_ms, BUCKET_MS, dtype=np.int64))
    keys = np.unique(keys_of(grid, period, tz).to_numpy())
    ends = np.append(keys[1:], t1_ms)
    return [(int(k), int(e)) for k, e in zip(keys.tolist(), ends.tolist(), strict=True)]


def sums(
    conn: sqlite3.Connection,
    table: str,
    select: str,
    store_id: str,
    bounds: Bounds,
    *,
    group_by: str = "",
    where: str = "",
    params: tuple[object, ...] = (),
    t0_ms: int | None = None,
) -> pd.DataFrame:
    """``SELECT key, <select> FROM table`` grouped per period (and ``group_by``).

    Args:
        conn: the database.
        table: an aggregate table (aliased ``t``).
        select: the aggregate expressions, e.g. ``"sum(t.count) AS n"``.
        store_id: the store.
        bounds: the periods (:func:`period_bounds`).
        group_by: more grouping columns, e.g. ``"t.zone_id"`` (also selected).
        where: more conditions on ``t`` (``AND …``).
        params: the values of ``where``'s placeholders.
        t0_ms: the window's start, when the first period starts before it.
    """
    if not bounds:
        return pd.DataFrame(columns=["key"])
    marks = ", ".join("(?, ?)" for _ in bounds)
    flat = [v for pair in bounds for v in pair]
    lower = "max(e.k0, ?)" if t0_ms is not None else "e.k0"
    extra = (t0_ms,) if t0_ms is not None else ()
    cols = f", {group_by}" if group_by else ""
    sql = (
        f"WITH e(k0, k1) AS (VALUES {marks}) "
        f"SELECT e.k0 AS key{cols}, {select} FROM e JOIN {table} t "
        f"ON t.store_id = ? AND t.bucket_ms >= {lower} AND t.bucket_ms < e.k1 {where} "
        f"GROUP BY e.k0{cols}"
    )
    return pd.read_sql_query(sql, conn, params=(*flat, store_id, *extra, *params))


def coverage_by_period(
    conn: sqlite3.Connection,
    store_id: str,
    t0_ms: int,
    t1_ms: int,
    closed_ms: int,
    period: Period | None,
    tz: str,
) -> pd.DataFrame:
    """Like :func:`webui.coverage.by_period` over ``bucket_status``, counted by SQLite."""
    start = t0_ms - t0_ms % BUCKET_MS
    grid = pd.Series(np.arange(start, t1_ms, BUCKET_MS, dtype=np.int64))
    closed = (grid + BUCKET_MS <= closed_ms).to_numpy()
    keys, inverse = np.unique(keys_of(grid, period, tz).to_numpy(), return_inverse=True)
    out = pd.DataFrame(
        {"expected": np.bincount(inverse, closed, len(keys)).astype(int)},
        index=pd.Index(keys, name="key"),
    )
    ends = np.append(keys[1:], t1_ms)
    bounds = [(int(k), int(e)) for k, e in zip(keys.tolist(), ends.tolist(), strict=True)]
    seen = sums(
        conn, "agg_windows",
        "sum(t.status = 'complete') AS complete, sum(t.status = 'partial') AS partial, "
        "sum(t.coverage) AS covered",
        store_id, bounds, where="AND t.bucket_ms + ? <= ?", params=(BUCKET_MS, closed_ms),
        t0_ms=start,
    ).set_index("key")  # fmt: skip
    for col in ("complete", "partial", "covered"):
        out[col] = seen[col].reindex(out.index).fillna(0) if len(seen) else 0
    out[["complete", "partial"]] = out[["complete", "partial"]].astype(int)
    out["missing"] = out["expected"] - out["complete"] - out["partial"]
    out["future"] = np.bincount(inverse, ~closed, len(keys)).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["coverage"] = out["covered"] / out["expected"].where(out["expected"] > 0)
    e, c, m = (out[k].to_numpy() for k in ("expected", "complete", "missing"))
    out["status"] = np.where(
        e == 0, "future", np.where(c == e, "complete", np.where(m == e, "missing", "partial"))
    )
    return out[[*STATUS_LABELS, "expected", "coverage", "status"]]
