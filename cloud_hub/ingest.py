"""Applying a verified batch: the whole batch in one transaction, or nothing.

In that transaction: the delivery is recorded (its store, batch id and signed timestamp
seen before: a replay, :class:`ReplayError`); a batch id already applied answers
``duplicate`` and changes nothing; otherwise each table's rows are upserted into its
``<table>_5m`` facts (a row replaces the stored one only with a higher ``rev``), the
hourly and daily rollups and the ledger hours that the changed rows fall in are
recomputed from the facts, the ledger days of those hours from the ledger hours
(:func:`cloud_hub.ledger.day_row`), the ``day_totals`` of the batch's days from the daily
rollups (:func:`cloud_hub.day_totals.refresh`), and the batch id is recorded.
Out-of-order and re-revised rows therefore leave the rollups equal to the sums of the
5-minute rows.

Every analysis of a bucket on the box gives all of its rows, in every table, one new
revision (``local_db.aggregates.replace_buckets``), and the bucket's ``agg_windows`` row
carries it. So a window at revision ``R`` says: rows of this bucket with a lower ``rev``
are from an older analysis. They are deleted (:func:`_drop_stale`): a zone visit, a
transition or a heatmap cell that a re-analysis no longer finds does not linger here.

``FOOTFALL_HUB_TEST_PAUSE_BEFORE_COMMIT=<file>`` (tests only) makes the transaction write
that file and wait before it commits, so a test can kill the hub mid-batch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

from psycopg.errors import UniqueViolation
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    case,
    delete,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from cloud_hub import day_totals
from cloud_hub.ledger import LedgerHour, day_bounds, day_row
from cloud_hub.partitions import ensure_partitions
from cloud_hub.registry import store_tz
from cloud_hub.schema import (
    DAILY,
    FACTS,
    HOURLY,
    ROLLUPS,
    applied_batches,
    ledger_days,
    ledger_hours,
    rollup_name,
    seen_deliveries,
)
from wire import TABLES, TOLERANCE_S, Ack, Batch, Row, TableShape

logger = logging.getLogger(__name__)

HOUR_MS: Final = 3_600_000
#: A bucket further than this ahead of the hub's clock is refused (a box's clock is off).
MAX_FUTURE_MS: Final = 24 * HOUR_MS
PAUSE_ENV: Final = "FOOTFALL_HUB_TEST_PAUSE_BEFORE_COMMIT"
PAUSE_S: Final = 120.0


class IngestError(ValueError):
    """The batch is well-formed but cannot be applied (its reason, the HTTP status)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ReplayError(IngestError):
    """This exact delivery (store, batch id, signed timestamp) was received before."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, 409)


@dataclass(frozen=True)
class Delivery:
    """Who sent a batch and when they signed it (already verified)."""

    store_id: str
    msg_id: str
    timestamp_s: int


def delivery_seen(conn: Connection, delivery: Delivery) -> bool:
    """Whether this delivery was recorded before (a replay)."""
    found = conn.execute(
        select(seen_deliveries.c.store_id).where(
            seen_deliveries.c.store_id == delivery.store_id,
            seen_deliveries.c.msg_id == delivery.msg_id,
            seen_deliveries.c.timestamp_s == delivery.timestamp_s,
        )
    ).first()
    return found is not None


def _hour_ms(bucket_ms: int, tz: zoneinfo.ZoneInfo) -> int:
    """The start (UTC ms) of the store-local hour a bucket is in."""
    local = datetime.fromtimestamp(bucket_ms / 1000, tz)
    return bucket_ms - (local.minute * 60 + local.second) * 1000


def _runs(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Touched hour starts as runs ``(first, last)`` of consecutive hours, same phase."""
    runs: list[tuple[int, int]] = []
    for hour in sorted(set(hours)):
        if runs and hour - runs[-1][1] == HOUR_MS:
            runs[-1] = (runs[-1][0], hour)
        else:
            runs.append((hour, hour))
    return runs


def _hour_expr(bucket: ColumnElement[int], phase: int) -> ColumnElement[int]:
    """SQL: the local hour start of ``bucket``; local hours start ``phase`` ms into an UTC hour.

    ``phase`` is 0 but in zones at half- or quarter-hour offsets.
    """
    shifted = bucket + literal(HOUR_MS - phase, BigInteger)
    return bucket - shifted % literal(HOUR_MS, BigInteger)


_STAGED: dict[str, Table] = {}


def _staging(conn: Connection, facts: Table) -> Table:
    """The connection's temporary staging table for ``facts`` (created once a connection)."""
    name = f"staging_{facts.name}"
    created = conn.connection.info.setdefault("footfall_staging", set())
    if name not in created:
        conn.exec_driver_sql(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS "{name}" '
            f'(LIKE "{facts.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
        )
        created.add(name)
    if name not in _STAGED:
        _STAGED[name] = Table(name, MetaData(), *(Column(c.name, c.type) for c in facts.columns))
    return _STAGED[name]


def _copy_rows(
    conn: Connection, into: str, shape: TableShape, rows: Sequence[Row], store_id: str,
    now_ms: int,
) -> None:  # fmt: skip
    """``COPY`` a table's rows (with the store and arrival time) into ``into`` (PostgreSQL)."""
    names = [c.name for c in shape.columns]
    jsoned = {i for i, c in enumerate(shape.columns) if c.kind == "counts"}
    get, tail = itemgetter(*names), (store_id, now_ms)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    sql = f'COPY "{into}" ({", ".join(names)}, store_id, received_ms) FROM STDIN'
    with cursor.copy(sql) as copy:
        for row in rows:
            values = get(row)
            if jsoned:
                values = tuple(json.dumps(v) if i in jsoned else v for i, v in enumerate(values))
            copy.write_row(values + tail)


def _copy_new(
    conn: Connection, facts: str, shape: TableShape, rows: Sequence[Row], store_id: str,
    now_ms: int,
) -> Counter[int] | None:  # fmt: skip
    """``COPY`` rows straight into the facts if none of them is there yet (PostgreSQL).

    The common case, a box sending buckets the hub has not seen, then costs what a plain
    ``COPY`` costs. One row already stored (a re-sent or re-analysed bucket) makes the
    ``COPY`` fail on the primary key; it is rolled back to its savepoint and None tells
    the caller to upsert instead.
    """
    savepoint = conn.begin_nested()
    try:
        _copy_rows(conn, facts, shape, rows, store_id, now_ms)
    except UniqueViolation:
        savepoint.rollback()
        return None
    savepoint.commit()
    return Counter(int(row["bucket_ms"]) for row in rows)  # type: ignore[call-overload]


def _upsert(
    conn: Connection, table: str, rows: Sequence[Row], store_id: str, now_ms: int
) -> Counter[int]:
    """Insert or replace (higher ``rev`` only) a table's rows; per bucket, the rows changed.

    On PostgreSQL new rows are ``COPY``-ed straight in (:func:`_copy_new`); otherwise they
    are ``COPY``-ed into a temporary table and upserted from there in one statement
    (binding thousands of parameters cost more than the upsert), which answers one count
    per bucket rather than one row per changed row.
    """
    if not rows:
        return Counter()
    facts, shape = FACTS[table], TABLES[table]
    postgres = conn.dialect.name == "postgresql"
    statement = (postgresql if postgres else sqlite).insert(facts)
    keys = [c.name for c in facts.primary_key.columns]
    names = [c.name for c in facts.columns]
    if postgres:
        fresh = _copy_new(conn, facts.name, shape, rows, store_id, now_ms)
        if fresh is not None:
            return fresh
        staged = _staging(conn, facts)
        _copy_rows(conn, staged.name, shape, rows, store_id, now_ms)
        statement = statement.from_select(names, select(staged))
    upsert = statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in facts.columns if c.name not in keys},
        where=facts.c.rev < statement.excluded.rev,
    ).returning(facts.c.bucket_ms)
    if postgres:
        changed = upsert.cte("changed")
        counted = select(changed.c.bucket_ms, func.count()).group_by(changed.c.bucket_ms)
        return Counter({bucket: int(n) for bucket, n in conn.execute(counted)})
    prepared = [
        {**row, "store_id": store_id, "received_ms": now_ms}
        | ({"hist": json.dumps(row["hist"])} if "hist" in row else {})
        for row in rows
    ]
    return Counter(bucket for (bucket,) in conn.execute(upsert, prepared))


def _rollup_columns(table: str, source: Table, from_rollup: bool) -> list[ColumnElement[Any]]:
    aggregated: list[ColumnElement[Any]] = [
        func.sum(source.c.buckets) if from_rollup else func.count()
    ]
    for column, how in ROLLUPS[table].items():
        name = rollup_name(column, how)
        value = source.c[name] if from_rollup else source.c[column]
        aggregated.append((func.sum if how == "sum" else func.max)(value).label(name))
    return aggregated


def _recompute_hours(conn: Connection, table: str, store_id: str, run: tuple[int, int]) -> None:
    facts, hourly = FACTS[table], HOURLY[table]
    first, last = run
    dims = [facts.c[c.name] for c in TABLES[table].key[1:]]
    hour = _hour_expr(facts.c.bucket_ms, first % HOUR_MS)
    conn.execute(
        delete(hourly).where(
            hourly.c.store_id == store_id, hourly.c.hour_ms >= first, hourly.c.hour_ms <= last
        )
    )
    query = (
        select(facts.c.store_id, hour, *dims, *_rollup_columns(table, facts, False))
        .where(
            facts.c.store_id == store_id,
            facts.c.bucket_ms >= first,
            facts.c.bucket_ms < last + HOUR_MS,
        )
        .group_by(facts.c.store_id, hour, *dims)
    )
    conn.execute(hourly.insert().from_select([c.name for c in hourly.columns], query))


def _recompute_day(
    conn: Connection, table: str, store_id: str, day: date, tz: zoneinfo.ZoneInfo
) -> None:
    hourly, daily = HOURLY[table], DAILY[table]
    start, end = day_bounds(day, tz)
    dims = [hourly.c[c.name] for c in TABLES[table].key[1:]]
    conn.execute(delete(daily).where(daily.c.store_id == store_id, daily.c.day == day.isoformat()))
    query = (
        select(
            hourly.c.store_id,
            literal(day.isoformat()),
            *dims,
            *_rollup_columns(table, hourly, True),
        )
        .where(hourly.c.store_id == store_id, hourly.c.hour_ms >= start, hourly.c.hour_ms < end)
        .group_by(hourly.c.store_id, *dims)
    )
    conn.execute(daily.insert().from_select([c.name for c in daily.columns], query))


def _recompute_ledger(conn: Connection, store_id: str, run: tuple[int, int]) -> None:
    windows = FACTS["agg_windows"]
    first, last = run
    hour = _hour_expr(windows.c.bucket_ms, first % HOUR_MS)
    counts = [
        func.sum(case((windows.c.status == status, 1), else_=0))
        for status in ("complete", "partial", "missing")
    ]
    conn.execute(
        delete(ledger_hours).where(
            ledger_hours.c.store_id == store_id,
            ledger_hours.c.hour_ms >= first,
            ledger_hours.c.hour_ms <= last,
        )
    )
    query = (
        select(
            windows.c.store_id,
            hour,
            func.count(),
            *counts,
            func.min(windows.c.received_ms),
            func.max(windows.c.received_ms),
        )
        .where(
            windows.c.store_id == store_id,
            windows.c.bucket_ms >= first,
            windows.c.bucket_ms < last + HOUR_MS,
        )
        .group_by(windows.c.store_id, hour)
    )
    conn.execute(ledger_hours.insert().from_select([c.name for c in ledger_hours.columns], query))


def _recompute_ledger_day(
    conn: Connection, store_id: str, day: date, tz: zoneinfo.ZoneInfo
) -> None:
    start, end = day_bounds(day, tz)
    hours = [
        LedgerHour(*row)
        for row in conn.execute(
            select(
                ledger_hours.c.hour_ms, ledger_hours.c.buckets, ledger_hours.c.complete,
                ledger_hours.c.missing, ledger_hours.c.first_received_ms,
                ledger_hours.c.last_received_ms,
            ).where(
                ledger_hours.c.store_id == store_id,
                ledger_hours.c.hour_ms >= start,
                ledger_hours.c.hour_ms < end,
            )
        )
    ]  # fmt: skip
    conn.execute(
        delete(ledger_days).where(
            ledger_days.c.store_id == store_id, ledger_days.c.day == day.isoformat()
        )
    )
    row = day_row(store_id, day, start, end, hours)
    if row is not None:
        conn.execute(ledger_days.insert().values(**row))


def _apply_table(
    conn: Connection,
    table: str,
    rows: Sequence[Row],
    store_id: str,
    tz: zoneinfo.ZoneInfo,
    now_ms: int,
) -> int:
    """Upsert one table's rows and recompute what they changed; the rows that changed."""
    changed = _upsert(conn, table, rows, store_id, now_ms)
    _recompute(conn, table, store_id, changed, tz)
    return sum(changed.values())


def _recompute(
    conn: Connection, table: str, store_id: str, changed: Iterable[int], tz: zoneinfo.ZoneInfo
) -> None:
    """Recompute the rollups (and for windows the ledger) of the buckets in ``changed``."""
    hours = {_hour_ms(bucket, tz) for bucket in set(changed)}
    # local hours at a half-hour offset start mid-UTC-hour: a run keeps one phase
    for phase in {h % HOUR_MS for h in hours}:
        for run in _runs(h for h in hours if h % HOUR_MS == phase):
            _recompute_hours(conn, table, store_id, run)
            if table == "agg_windows":
                _recompute_ledger(conn, store_id, run)
    for day in sorted({datetime.fromtimestamp(h / 1000, tz).date() for h in hours}):
        _recompute_day(conn, table, store_id, day, tz)
        if table == "agg_windows":
            _recompute_ledger_day(conn, store_id, day, tz)


def _drop_stale(
    conn: Connection, store_id: str, windows: Sequence[dict[str, Any]], tz: zoneinfo.ZoneInfo
) -> int:
    """Delete the rows older than their bucket's window's revision; the rows deleted.

    Args:
        conn: The batch's transaction.
        store_id: The store.
        windows: The batch's ``agg_windows`` rows (``bucket_ms``, ``rev``).
        tz: The store's time zone (for the rollups of what was deleted).
    """
    if not windows:
        return 0
    revision = {int(row["bucket_ms"]): int(row["rev"]) for row in windows}
    low, high = min(revision), max(revision)
    stored = FACTS["agg_windows"]
    older = select(stored.c.bucket_ms).where(
        stored.c.store_id == store_id, stored.c.bucket_ms.between(low, high),
        stored.c.rev < max(revision.values()),
    ).limit(1)  # fmt: skip
    if conn.execute(older).first() is None:
        return 0  # no older analysis of these buckets here (batches carry whole buckets)
    dropped = 0
    for table, facts in FACTS.items():
        if table == "agg_windows":
            continue
        found = conn.execute(
            select(facts.c.bucket_ms, func.min(facts.c.rev))
            .where(facts.c.store_id == store_id, facts.c.bucket_ms.between(low, high))
            .group_by(facts.c.bucket_ms)
        )
        stale = [b for b, oldest in found if b in revision and oldest < revision[b]]
        for bucket in stale:
            result = conn.execute(
                delete(facts).where(
                    facts.c.store_id == store_id,
                    facts.c.bucket_ms == bucket,
                    facts.c.rev < revision[bucket],
                )
            )
            dropped += result.rowcount
        _recompute(conn, table, store_id, stale, tz)
    if dropped:
        logger.info("store %s: %d rows of older analyses deleted", store_id, dropped)
    return dropped


def _pause_if_asked(batch_id: str) -> None:
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        logger.warning("%s is set: pausing batch %s before its commit", PAUSE_ENV, batch_id)
        Path(marker).write_text(batch_id)
        time.sleep(PAUSE_S)


def apply_batch(engine: Engine, batch: Batch, delivery: Delivery, now_ms: int) -> Ack:
    """Apply a verified, decoded batch wholly or not at all.

    Args:
        engine: The hub's database.
        batch: The decoded batch (its store is the delivery's).
        delivery: The verified delivery (recorded, for replay detection).
        now_ms: The hub's clock.

    Returns:
        The acknowledgement (``duplicate`` for a batch id applied before).

    Raises:
        ReplayError: This delivery was received before.
        IngestError: A bucket too far in the future, or the store vanished.
    """
    with engine.connect() as conn:
        tz_name = store_tz(conn, batch.store_id)
    if tz_name is None:
        raise IngestError(f"no store {batch.store_id!r}", 401)
    tz = zoneinfo.ZoneInfo(tz_name)
    buckets = [
        bucket
        for rows in batch.tables.values()
        for row in rows
        if isinstance(bucket := row["bucket_ms"], int)
    ]
    if buckets and max(buckets) > now_ms + MAX_FUTURE_MS:
        raise IngestError(
            f"bucket {max(buckets)} is more than {MAX_FUTURE_MS // HOUR_MS} h ahead of the "
            "hub's clock (is the box's clock right?)"
        )
    ensure_partitions(engine, buckets)
    key = (applied_batches.c.store_id == batch.store_id) & (
        applied_batches.c.batch_id == batch.batch_id
    )
    try:
        with engine.begin() as conn:
            conn.execute(
                delete(seen_deliveries).where(
                    seen_deliveries.c.timestamp_s < now_ms // 1000 - 2 * TOLERANCE_S
                )
            )
            if delivery_seen(conn, delivery):
                raise ReplayError(_replay_reason(delivery))
            conn.execute(
                seen_deliveries.insert().values(
                    store_id=delivery.store_id,
                    msg_id=delivery.msg_id,
                    timestamp_s=delivery.timestamp_s,
                )
            )
            if conn.execute(select(applied_batches.c.batch_id).where(key)).first():
                return Ack(batch.batch_id, 0, True)
            _drop_stale(conn, batch.store_id, batch.tables.get("agg_windows", []), tz)
            applied = sum(
                _apply_table(conn, table, rows, batch.store_id, tz, now_ms)
                for table, rows in batch.tables.items()
            )
            if buckets:
                days = [
                    datetime.fromtimestamp(b / 1000, tz).date()
                    for b in (min(buckets), max(buckets))
                ]
                day_totals.refresh(conn, batch.store_id, days[0], days[1])
            conn.execute(
                applied_batches.insert().values(
                    store_id=batch.store_id,
                    batch_id=batch.batch_id,
                    received_ms=now_ms,
                    rows=batch.row_count,
                    applied_rows=applied,
                )
            )
            _pause_if_asked(batch.batch_id)
    except IntegrityError as exc:  # the same delivery or batch committed meanwhile
        with engine.connect() as conn:
            if conn.execute(select(applied_batches.c.batch_id).where(key)).first():
                logger.info("batch %s was applied concurrently: duplicate", batch.batch_id)
                return Ack(batch.batch_id, 0, True)
        raise ReplayError(_replay_reason(delivery)) from exc
    return Ack(batch.batch_id, applied, False)


def _replay_reason(delivery: Delivery) -> str:
    return (
        f"replayed delivery: batch {delivery.msg_id} signed at {delivery.timestamp_s} was "
        "received before (re-sign a retry with a fresh timestamp)"
    )
