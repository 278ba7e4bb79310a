"""``footfall export``: any aggregate table as CSV or Parquet, optionally rolled up.

Small-count privacy: with ``k``, rows that describe fewer than ``k`` people are
suppressed before anything leaves the box — transitions with a count under k and
heatmap cells with fewer than k distinct people.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd

from appliance.analytics.rollups import ADDITIVE, Period, rollup
from local_db.aggregates import table_rows

logger = logging.getLogger(__name__)

TABLES = tuple(ADDITIVE)
#: the years a date asked for may fall in: the pages, their CSV downloads, ``export``
#: and ``analyze`` (outside it, dates overflow Python's and the analytics' arithmetic)
MIN_YEAR, MAX_YEAR = 2000, 2100
#: the column that counts people in each table that can single someone out
K_COLUMNS = {"agg_transitions": "count", "agg_heatmap": "people"}


class ExportError(ValueError):
    """The export cannot be made as asked."""


def year_error(day: date, text: str) -> str | None:
    """Why the date ``day`` (parsed from ``text``) cannot be asked for, or None if it can."""
    if MIN_YEAR <= day.year <= MAX_YEAR:
        return None
    return f"{text!r}: the year must be {MIN_YEAR} to {MAX_YEAR}"


def read_table(
    conn: sqlite3.Connection,
    table: str,
    t0_ms: int,
    t1_ms: int,
    *,
    period: Period | None = None,
    tz: str = "UTC",
    k: int = 0,
) -> pd.DataFrame:
    """Rows of an aggregate table in [t0, t1), rolled up and k-suppressed as asked.

    Raises:
        ExportError: an unknown table.
    """
    if table not in TABLES:
        raise ExportError(f"unknown table {table!r}; one of {', '.join(TABLES)}")
    df = table_rows(conn, table, t0_ms, t1_ms)
    if period is not None:
        df = rollup(df, table, period, tz)
    column = K_COLUMNS.get(table)
    if k > 1 and column is not None and not df.empty:
        small = df[column] < k
        logger.info("suppressed %d of %d %s rows under k=%d", int(small.sum()), len(df), table, k)
        df = df[~small]
    return df.reset_index(drop=True)


def write(df: pd.DataFrame, path: Path, fmt: Literal["csv", "parquet"]) -> None:
    """Write a table as CSV or Parquet (Parquet needs pyarrow: the ``export`` extra).

    Raises:
        ExportError: Parquet asked for without pyarrow.
    """
    if fmt == "csv":
        df.to_csv(path, index=False)
        return
    try:
        df.to_parquet(path, index=False)
    except ImportError as exc:
        raise ExportError("parquet needs pyarrow: pip install 'footfall[export]'") from exc
