"""Typed reads and writes of the aggregate tables (``agg_windows`` and the ``agg_*`` metrics).

Every aggregate row is keyed by ``(store_id, bucket_ms, …)``, ``bucket_ms`` being the
UTC ms start of a 5-minute bucket; ranges are half-open (``t0_ms <= bucket_ms < t1_ms``).

* :func:`replace_buckets` is the analytics engine's one write: a range of buckets
  deleted and written anew in one :func:`local_db.connection.transaction`, so a
  recompute never double counts and a crash leaves the old rows.
* :func:`newest_bucket` is the scheduler's high-water mark.
* :func:`window_rows` and :func:`table_rows` read buckets back (the coverage strips, the
  export); :func:`footfall_per_period`, :func:`queue_per_period` and
  :func:`windows_per_period` let SQLite sum rows per local period, so a month charted by
  day reads ~30 rows rather than 8,640 buckets x zones: the periods' UTC bounds
  (:data:`Bounds`, from :func:`appliance.analytics.rollups.period_bounds`) go in as a
  ``VALUES`` table and SQLite range-scans each period on the tables' primary keys.

Every bucket a write leaves rows in gets a new revision in ``bucket_revisions`` (per
table, store and bucket; the next value of ``bucket_revision_seq``, which only grows):
the hub sync's outbox (:mod:`local_db.outbox`) sends a bucket again when its revision
passes the acknowledged one, and the hub keeps the row with the higher ``rev``. One
row per bucket and table rather than a ``rev`` column on every aggregate row: a write
adds a few rows per bucket, not an index entry per heatmap cell.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import Final, Literal

import pandas as pd

from local_db.connection import transaction

logger = logging.getLogger(__name__)

#: the metric tables the analytics engine writes per bucket (``agg_windows`` besides)
METRIC_TABLES: Final = (
    "agg_footfall",
    "agg_dwell",
    "agg_occupancy",
    "agg_queue",
    "agg_transitions",
    "agg_funnel",
    "agg_heatmap",
    "agg_alerts",
)
#: ``[(key, start, end), …]`` UTC ms of consecutive periods (or buckets): the rows of
#: ``start <= bucket_ms < end`` are summed under ``key``, the period's local start, which
#: is not always ``start`` (a window starting mid-period; an hour that began before a
#: half-hour DST change ended it)
Bounds = list[tuple[int, int, int]]

#: how a queue zone's rows combine per period: counts add, lengths average, the worst
#: p90, and the prediction error weighted by the people served (``mae_w / mae_n``)
_QUEUE_SUMS: Final = (
    "sum(t.joined) AS joined, sum(t.served) AS served, sum(t.abandoned) AS abandoned, "
    "sum(t.wait_total_s) AS wait_total_s, max(t.p90_wait_s) AS p90_wait_s, "
    "avg(t.mean_len) AS mean_len, max(t.max_len) AS max_len, count(*) AS n, "
    "sum(t.predicted_mae_s * t.served) AS mae_w, "
    "sum(CASE WHEN t.predicted_mae_s IS NULL THEN 0 ELSE t.served END) AS mae_n"
)


@dataclass(frozen=True, slots=True)
class WindowRow:
    """One ``agg_windows`` row: what the analysis of one bucket saw.

    Attributes:
        bucket_ms: the bucket's start (UTC ms).
        computed_at_ms: when it was analysed (UTC ms).
        coverage: the fraction of camera-time that cameras were up (0..1).
        status: ``complete``, ``partial`` or ``missing`` (from the coverage).
        customers: distinct customers seen in the bucket.
        staff: staff people found in the analysed range.
    """

    bucket_ms: int
    computed_at_ms: int
    coverage: float
    status: Literal["complete", "partial", "missing"]
    customers: int
    staff: int


def _metric_table(table: str) -> str:
    """``table`` if it is an aggregate metric table (it goes into SQL text), else ValueError."""
    if table not in METRIC_TABLES:
        raise ValueError(f"unknown aggregate table {table!r}; one of {', '.join(METRIC_TABLES)}")
    return table


def replace_buckets(
    conn: sqlite3.Connection,
    store_id: str,
    t0_ms: int,
    t1_ms: int,
    tables: Mapping[str, pd.DataFrame],
    windows: Sequence[WindowRow],
) -> None:
    """Replace a store's buckets of ``[t0, t1)`` in ``agg_windows`` and ``tables``, atomically.

    The rows of ``agg_windows`` and of every table in ``tables`` in the range are deleted,
    then ``tables`` (bulk ``executemany``, NaN stored as NULL) and ``windows`` are
    inserted, all in one transaction: on any error nothing changes. In that transaction
    the range gets one new revision, shared by every bucket left with rows in any
    aggregate table (those of tables not in ``tables`` too), and the range's other
    revisions are removed: the sync sends those rows again, and the hub drops any row of
    those buckets with an older revision (a row the new analysis no longer has).

    Args:
        conn: Autocommit connection with no transaction open.
        store_id: The store whose rows are replaced.
        t0_ms: First bucket start (UTC ms, inclusive).
        t1_ms: End of the range (exclusive).
        tables: Per metric table, its new rows: a column per table column (named as in
            the table, ``store_id`` included); an empty frame only deletes.
        windows: The new ``agg_windows`` rows of the range (of ``store_id``).

    Raises:
        ValueError: A table is not one of :data:`METRIC_TABLES`; nothing was written.
        sqlite3.Error: The write failed (then it was rolled back).
    """
    names = [_metric_table(table) for table in tables]
    with transaction(conn):
        for table in ("agg_windows", *names):
            conn.execute(
                f"DELETE FROM {table} WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ?",
                (store_id, t0_ms, t1_ms),
            )
        for table, df in tables.items():
            if df.empty:
                continue
            cols = list(df.columns)
            marks = ", ".join("?" for _ in cols)
            # object dtype boxes numpy scalars as Python ones; NaN becomes NULL
            rows = df.astype(object).where(df.notna(), None).itertuples(index=False, name=None)
            conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)
        conn.executemany(
            "INSERT INTO agg_windows (store_id, bucket_ms, computed_at_ms, coverage, status, "
            "customers, staff) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(store_id, *astuple(w)) for w in windows],
        )
        _bump_revisions(conn, store_id, t0_ms, t1_ms, ("agg_windows", *METRIC_TABLES))
    logger.debug("replaced %d bucket(s) of %s from %d", len(windows), store_id, t0_ms)


def _bump_revisions(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int, tables: Sequence[str]
) -> None:
    """Give the buckets of ``[t0, t1)`` that have rows in ``tables`` one new revision."""
    (rev,) = conn.execute(
        "UPDATE bucket_revision_seq SET rev = rev + 1 WHERE id = 1 RETURNING rev"
    ).fetchone()
    now_ms = round(time.time() * 1000)
    for table in tables:
        span = (table, store_id, t0_ms, t1_ms)
        conn.execute(
            "DELETE FROM bucket_revisions WHERE table_name = ? AND store_id = ? "
            "AND bucket_ms >= ? AND bucket_ms < ?",
            span,
        )
        conn.execute(
            "INSERT INTO bucket_revisions (table_name, store_id, bucket_ms, rev, rows, written_ms) "
            f"SELECT ?, store_id, bucket_ms, ?, count(*), ? FROM {table} "
            "WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ? GROUP BY bucket_ms",
            (table, rev, now_ms, store_id, t0_ms, t1_ms),
        )


def newest_bucket(
    conn: sqlite3.Connection, store_id: str, before_ms: int | None = None
) -> int | None:
    """The newest analysed bucket of a store (its ``agg_windows``), optionally before a time.

    Args:
        conn: Open connection.
        store_id: The store.
        before_ms: Only buckets starting before this (UTC ms); all when None.

    Returns:
        The bucket's start (UTC ms), or None when there is none.
    """
    if before_ms is None:
        row = conn.execute(
            "SELECT max(bucket_ms) FROM agg_windows WHERE store_id = ?", (store_id,)
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT max(bucket_ms) FROM agg_windows WHERE store_id = ? AND bucket_ms < ?",
            (store_id, before_ms),
        ).fetchone()
    return None if row[0] is None else int(row[0])


def window_rows(conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int) -> pd.DataFrame:
    """The analysed buckets of ``[t0, t1)``: ``bucket_ms, status, coverage`` (unordered).

    Args:
        conn: Open connection.
        store_id: The store.
        t0_ms: First bucket start (inclusive).
        t1_ms: End (exclusive).

    Returns:
        One row per ``agg_windows`` row in the range.
    """
    return pd.read_sql_query(
        "SELECT bucket_ms, status, coverage FROM agg_windows "
        "WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ?",
        conn,
        params=(store_id, t0_ms, t1_ms),
    )


def table_rows(conn: sqlite3.Connection, table: str, t0_ms: int, t1_ms: int) -> pd.DataFrame:
    """Every row (of every store) of a metric table in ``[t0, t1)``, ordered by ``bucket_ms``.

    Args:
        conn: Open connection.
        table: One of :data:`METRIC_TABLES`.
        t0_ms: First bucket start (inclusive).
        t1_ms: End (exclusive).

    Returns:
        The rows, with all the table's columns.

    Raises:
        ValueError: An unknown table.
    """
    return pd.read_sql_query(
        f"SELECT * FROM {_metric_table(table)} "
        "WHERE bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms",
        conn,
        params=(t0_ms, t1_ms),
    )


def _per_period(
    conn: sqlite3.Connection,
    table: str,
    select: str,
    store_id: str,
    bounds: Bounds,
    *,
    group_by: str = "",
    where: str = "",
    params: tuple[object, ...] = (),
) -> pd.DataFrame:
    """``SELECT key, <select> FROM table t`` grouped per period of ``bounds`` (and ``group_by``)."""
    if not bounds:
        return pd.DataFrame(columns=["key"])
    marks = ", ".join("(?, ?, ?)" for _ in bounds)
    flat = [v for period in bounds for v in period]
    cols = f", {group_by}" if group_by else ""
    sql = (
        f"WITH e(k, k0, k1) AS (VALUES {marks}) "
        f"SELECT e.k AS key{cols}, {select} FROM e JOIN {table} t "
        f"ON t.store_id = ? AND t.bucket_ms >= e.k0 AND t.bucket_ms < e.k1 {where} "
        f"GROUP BY e.k{cols}"
    )
    return pd.read_sql_query(sql, conn, params=(*flat, store_id, *params))


def footfall_per_period(
    conn: sqlite3.Connection, store_id: str, bounds: Bounds, direction: Literal["in", "out"]
) -> pd.DataFrame:
    """People crossing the store's lines in one direction, summed per period.

    Args:
        conn: Open connection.
        store_id: The store.
        bounds: The periods (:data:`Bounds`).
        direction: ``in`` or ``out``.

    Returns:
        ``key, n``: one row per period with rows.
    """
    return _per_period(
        conn, "agg_footfall", "sum(t.count) AS n", store_id, bounds,
        where="AND t.direction = ?", params=(direction,),
    )  # fmt: skip


def queue_per_period(conn: sqlite3.Connection, store_id: str, bounds: Bounds) -> pd.DataFrame:
    """Queue rows combined per period and queue zone.

    Args:
        conn: Open connection.
        store_id: The store.
        bounds: The periods (:data:`Bounds`).

    Returns:
        ``key, zone_id, joined, served, abandoned, wait_total_s, p90_wait_s`` (the worst),
        ``mean_len`` (of the buckets), ``max_len``, ``n`` (buckets), ``mae_w`` and
        ``mae_n`` (the prediction error summed over the people served, and those people).
    """
    return _per_period(conn, "agg_queue", _QUEUE_SUMS, store_id, bounds, group_by="t.zone_id")


def windows_per_period(
    conn: sqlite3.Connection, store_id: str, bounds: Bounds, last_closed_ms: int
) -> pd.DataFrame:
    """Closed analysed buckets counted per period by status, and their coverage summed.

    Args:
        conn: Open connection.
        store_id: The store.
        bounds: The periods (:data:`Bounds`).
        last_closed_ms: The newest bucket start counted (later buckets are not closed yet).

    Returns:
        ``key, complete, partial, covered``: one row per period with such buckets.
    """
    return _per_period(
        conn, "agg_windows",
        "sum(t.status = 'complete') AS complete, sum(t.status = 'partial') AS partial, "
        "sum(t.coverage) AS covered",
        store_id, bounds, where="AND t.bucket_ms <= ?", params=(last_closed_ms,),
    )  # fmt: skip
