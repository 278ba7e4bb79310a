"""PostgreSQL's monthly partitions of the 5-minute fact tables.

Each ``<table>_5m`` is ``PARTITION BY RANGE (bucket_ms)``; a month's partition is
``<table>_5m_yYYYYmMM`` for ``[first ms of the month, first ms of the next)`` in UTC. The
first migration creates the current month and the next :data:`AHEAD_MONTHS`; ingest
calls :func:`ensure_partitions` for the months a batch touches before it applies the
batch (a later issue adds a job that creates them ahead, or pg_partman). SQLite has no
partitions: these functions do nothing there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from cloud_hub.schema import FACTS

logger = logging.getLogger(__name__)

AHEAD_MONTHS: Final = 2
_known: set[tuple[str, str]] = set()  # (database, month) this process has seen exist


def month_of(bucket_ms: int) -> tuple[int, int]:
    """(year, month) in UTC of an epoch-ms time."""
    when = datetime.fromtimestamp(bucket_ms / 1000, UTC)
    return when.year, when.month


def _month_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def months_from(year: int, month: int, count: int) -> list[tuple[int, int]]:
    """``count`` consecutive months starting at (year, month)."""
    months = [(year, month)]
    while len(months) < count:
        months.append(_next(*months[-1]))
    return months


def create_month(conn: Connection, year: int, month: int, tables: Iterable[str]) -> None:
    """Create one month's partition of each of ``tables`` if missing (in ``conn``'s transaction)."""
    low, high = _month_ms(year, month), _month_ms(*_next(year, month))
    for table in tables:
        name = f"{table}_y{year:04d}m{month:02d}"
        conn.execute(
            text(
                f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}" '
                f"FOR VALUES FROM ({low}) TO ({high})"
            )
        )


def ensure_partitions(engine: Engine, buckets_ms: Iterable[int]) -> None:
    """Make sure the months of ``buckets_ms`` have partitions (PostgreSQL; else nothing).

    Each missing month is created in its own short transaction, before the batch's
    own, so a batch never waits on DDL and a partition created by another hub process
    meanwhile is not an error.

    Raises:
        sqlalchemy.exc.DBAPIError: The database refused (and the month still lacks one).
    """
    if engine.dialect.name != "postgresql":
        return
    tables = [facts.name for facts in FACTS.values()]
    for year, month in sorted({month_of(b) for b in set(buckets_ms)}):
        tag = f"{year:04d}m{month:02d}"
        key = (engine.url.render_as_string(), tag)
        if key in _known:
            continue
        try:
            with engine.begin() as conn:
                create_month(conn, year, month, tables)
        except DBAPIError:  # another process created it at the same moment: check once more
            logger.info("partition %s raced with another creator; retrying", tag)
            with engine.begin() as conn:
                create_month(conn, year, month, tables)
        logger.debug("partitions for %s exist", tag)
        _known.add(key)
