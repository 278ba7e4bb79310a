"""The hub sync's outbox: what is acknowledged, what is in flight, what came back.

Every aggregate bucket has a revision per table (``bucket_revisions``, bumped by
:func:`local_db.aggregates.replace_buckets`). A position in a table's outbox is a
:class:`Mark`, ``(rev, bucket_ms)``; entries are ordered by it, and the revisions only
grow, so a rewritten bucket moves past every mark and is sent again.

Per box store and *target* (the hub's id for the store) and table:

* ``sync_marks``: the high-water mark, moved only by :func:`acknowledge` (the hub's
  ack for the pending batch's id);
* ``sync_pending``: at most one batch in flight, its id and its content's bounds per
  table (``(after, upto]``), saved (:func:`save_pending`) before it is first sent, so
  that a box killed mid-sync sends the same batch id again;
* ``sync_state``: the last ack, the failures in a row and when to retry (the backoff),
  the last error and whether it was a refusal that needs a human;
* ``sync_downlink``: the hub's downlink items, accepted (with their payload) or
  rejected (with the reason only).
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from local_db.aggregates import METRIC_TABLES
from local_db.connection import transaction

logger = logging.getLogger(__name__)

#: The tables the outbox sends; within a bucket the window (the hub's ledger counts it)
#: comes after the metrics, so a batch never has a bucket's window without its rows.
OUTBOX_TABLES: Final = (*METRIC_TABLES, "agg_windows")


@dataclass(frozen=True, order=True, slots=True)
class Mark:
    """A position in one table's outbox: everything up to ``(rev, bucket_ms)`` inclusive."""

    rev: int = 0
    bucket_ms: int = 0


#: Before every entry (revisions start at 1).
START: Final = Mark()


@dataclass(frozen=True, slots=True)
class Entry:
    """One bucket of one table waiting to be sent.

    Attributes:
        table: The aggregate table.
        bucket_ms: The bucket's start (UTC ms).
        rev: Its revision.
        rows: Its rows in the table when written.
        written_ms: When it was written (UTC ms).
    """

    table: str
    bucket_ms: int
    rev: int
    rows: int
    written_ms: int

    @property
    def mark(self) -> Mark:
        """The mark just past this entry."""
        return Mark(self.rev, self.bucket_ms)


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """The batch in flight: its id, when it was built, and per table ``(after, upto]``."""

    batch_id: str
    created_ms: int
    bounds: dict[str, tuple[Mark, Mark]]
    rows: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class SyncState:
    """What the last attempts did (``None`` fields: not yet).

    Attributes:
        last_ack_ms: When the hub last acknowledged a batch (box clock, UTC ms).
        last_ack_batch: That batch's id.
        failures: Failed attempts since then.
        retry_at_ms: No attempt before this (the backoff), or None.
        error: The last failure's reason, None once a batch was acknowledged since.
        error_ms: When it happened.
        rejected: The last failure was a refusal by the hub (a 4xx): it needs a human.
    """

    last_ack_ms: int | None = None
    last_ack_batch: str | None = None
    failures: int = 0
    retry_at_ms: int | None = None
    error: str | None = None
    error_ms: int | None = None
    rejected: bool = False


def _table(table: str) -> str:
    """``table`` if the outbox sends it (it goes into SQL text), else ValueError."""
    if table not in OUTBOX_TABLES:
        raise ValueError(f"not a synced table {table!r}; one of {', '.join(OUTBOX_TABLES)}")
    return table


def marks(conn: sqlite3.Connection, store_id: str, target: str) -> dict[str, Mark]:
    """The acknowledged high-water mark of every synced table (:data:`START` if none).

    Args:
        conn: Open connection.
        store_id: The box's store.
        target: The hub's id of the store.
    """
    found = {
        str(name): Mark(int(rev), int(bucket))
        for name, rev, bucket in conn.execute(
            "SELECT table_name, rev, bucket_ms FROM sync_marks WHERE store_id = ? AND target = ?",
            (store_id, target),
        )
    }
    return {table: found.get(table, START) for table in OUTBOX_TABLES}


def _entries_after(
    conn: sqlite3.Connection, store_id: str, table: str, after: Mark, limit: int
) -> Iterator[Entry]:
    for bucket, rev, rows, written in conn.execute(
        "SELECT bucket_ms, rev, rows, written_ms FROM bucket_revisions "
        "WHERE store_id = ? AND table_name = ? AND (rev, bucket_ms) > (?, ?) "
        "ORDER BY rev, bucket_ms LIMIT ?",
        (store_id, table, after.rev, after.bucket_ms, limit),
    ):
        yield Entry(table, int(bucket), int(rev), int(rows), int(written))


def next_entries(
    conn: sqlite3.Connection, store_id: str, after: Mapping[str, Mark], limit: int
) -> list[Entry]:
    """The oldest ``limit`` entries past the marks, all tables merged by (rev, bucket, table).

    Args:
        conn: Open connection.
        store_id: The box's store.
        after: Each table's mark (see :func:`marks`).
        limit: At most this many entries.

    Returns:
        The entries, oldest write first; each table's are the next ones past its mark.
    """
    streams = [
        _entries_after(conn, store_id, table, after.get(table, START), limit)
        for table in OUTBOX_TABLES
    ]
    merged = heapq.merge(*streams, key=lambda e: (e.rev, e.bucket_ms, OUTBOX_TABLES.index(e.table)))
    return [entry for _, entry in zip(range(limit), merged, strict=False)]


def rows_between(
    conn: sqlite3.Connection, store_id: str, table: str, after: Mark, upto: Mark
) -> list[dict[str, object]]:
    """A table's rows of the entries in ``(after, upto]``, each with its bucket's ``rev``.

    Args:
        conn: Open connection.
        store_id: The box's store.
        table: One of :data:`OUTBOX_TABLES`.
        after: Exclusive lower bound.
        upto: Inclusive upper bound.

    Returns:
        The rows as column → value (``store_id`` left out), ordered by (rev, bucket).

    Raises:
        ValueError: An unknown table.
    """
    cursor = conn.execute(
        f"SELECT r.rev AS rev, t.* FROM bucket_revisions r JOIN {_table(table)} t "
        "ON t.store_id = r.store_id AND t.bucket_ms = r.bucket_ms "
        "WHERE r.table_name = ? AND r.store_id = ? "
        "AND (r.rev, r.bucket_ms) > (?, ?) AND (r.rev, r.bucket_ms) <= (?, ?) "
        "ORDER BY r.rev, r.bucket_ms",
        (table, store_id, after.rev, after.bucket_ms, upto.rev, upto.bucket_ms),
    )
    names = [d[0] for d in cursor.description]
    return [
        {name: value for name, value in zip(names, row, strict=True) if name != "store_id"}
        for row in cursor
    ]


def pending_batch(conn: sqlite3.Connection, store_id: str, target: str) -> PendingBatch | None:
    """The batch in flight, if any.

    Args:
        conn: Open connection.
        store_id: The box's store.
        target: The hub's id of the store.
    """
    row = conn.execute(
        "SELECT batch_id, created_ms, bounds, rows, attempts FROM sync_pending "
        "WHERE store_id = ? AND target = ?",
        (store_id, target),
    ).fetchone()
    if row is None:
        return None
    bounds = {table: (Mark(a, b), Mark(c, d)) for table, (a, b, c, d) in json.loads(row[2]).items()}
    return PendingBatch(str(row[0]), int(row[1]), bounds, int(row[3]), int(row[4]))


def save_pending(
    conn: sqlite3.Connection, store_id: str, target: str, batch: PendingBatch
) -> PendingBatch:
    """Persist a new batch in flight, unless one is already (then that one wins).

    Args:
        conn: Autocommit connection with no transaction open.
        store_id: The box's store.
        target: The hub's id of the store.
        batch: The batch built from the current marks.

    Returns:
        The batch in flight now: ``batch``, or the one another sender saved first.
    """
    bounds = {t: [a.rev, a.bucket_ms, b.rev, b.bucket_ms] for t, (a, b) in batch.bounds.items()}
    with transaction(conn):
        existing = pending_batch(conn, store_id, target)
        if existing is not None:
            return existing
        conn.execute(
            "INSERT INTO sync_pending (store_id, target, batch_id, created_ms, bounds, rows) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (store_id, target, batch.batch_id, batch.created_ms, json.dumps(bounds), batch.rows),
        )
    logger.debug("outbox: batch %s of %d rows pending for %s", batch.batch_id, batch.rows, target)
    return batch


def _ensure_state(conn: sqlite3.Connection, store_id: str, target: str) -> None:
    conn.execute(
        "INSERT INTO sync_state (store_id, target) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (store_id, target),
    )


def acknowledge(
    conn: sqlite3.Connection, store_id: str, target: str, batch_id: str, now_ms: int
) -> bool:
    """The hub acknowledged ``batch_id``: advance the marks to its bounds, clear it.

    All in one transaction. Marks only move forward.

    Args:
        conn: Autocommit connection with no transaction open.
        store_id: The box's store.
        target: The hub's id of the store.
        batch_id: The acknowledged batch.
        now_ms: The box's clock.

    Returns:
        False when ``batch_id`` is not the batch in flight (nothing changed).
    """
    with transaction(conn):
        pending = pending_batch(conn, store_id, target)
        if pending is None or pending.batch_id != batch_id:
            return False
        current = marks(conn, store_id, target)
        for table, (_after, upto) in pending.bounds.items():
            mark = max(current[_table(table)], upto)
            conn.execute(
                "INSERT INTO sync_marks (store_id, target, table_name, rev, bucket_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
                "SET rev = excluded.rev, bucket_ms = excluded.bucket_ms",
                (store_id, target, table, mark.rev, mark.bucket_ms),
            )
        conn.execute(
            "DELETE FROM sync_pending WHERE store_id = ? AND target = ?", (store_id, target)
        )
        _ensure_state(conn, store_id, target)
        conn.execute(
            "UPDATE sync_state SET last_ack_ms = ?, last_ack_batch = ?, failures = 0, "
            "retry_at_ms = NULL, error = NULL, error_ms = NULL, rejected = 0 "
            "WHERE store_id = ? AND target = ?",
            (now_ms, batch_id, store_id, target),
        )
    return True


def record_failure(
    conn: sqlite3.Connection,
    store_id: str,
    target: str,
    error: str,
    now_ms: int,
    *,
    retry_at_ms: int | None,
    rejected: bool,
) -> int:
    """Count a failed attempt (the pending batch is kept) and when to try again.

    Args:
        conn: Autocommit connection with no transaction open.
        store_id: The box's store.
        target: The hub's id of the store.
        error: The reason (no secret in it).
        now_ms: The box's clock.
        retry_at_ms: No attempt before this (None: at the next run).
        rejected: The hub refused the batch (a 4xx).

    Returns:
        The failures in a row, this one included.
    """
    with transaction(conn):
        _ensure_state(conn, store_id, target)
        conn.execute(
            "UPDATE sync_pending SET attempts = attempts + 1 WHERE store_id = ? AND target = ?",
            (store_id, target),
        )
        (failures,) = conn.execute(
            "UPDATE sync_state SET failures = failures + 1, retry_at_ms = ?, error = ?, "
            "error_ms = ?, rejected = ? WHERE store_id = ? AND target = ? RETURNING failures",
            (retry_at_ms, error, now_ms, int(rejected), store_id, target),
        ).fetchone()
    return int(failures)


def sync_state(conn: sqlite3.Connection, store_id: str, target: str) -> SyncState:
    """The last ack, failures and error (all empty before the first attempt).

    Args:
        conn: Open connection.
        store_id: The box's store.
        target: The hub's id of the store.
    """
    row = conn.execute(
        "SELECT last_ack_ms, last_ack_batch, failures, retry_at_ms, error, error_ms, rejected "
        "FROM sync_state WHERE store_id = ? AND target = ?",
        (store_id, target),
    ).fetchone()
    if row is None:
        return SyncState()
    return SyncState(row[0], row[1], int(row[2]), row[3], row[4], row[5], bool(row[6]))


def pending_rows(conn: sqlite3.Connection, store_id: str, target: str) -> dict[str, int]:
    """Rows not yet acknowledged, per synced table.

    Args:
        conn: Open connection.
        store_id: The box's store.
        target: The hub's id of the store.
    """
    after = marks(conn, store_id, target)
    counts = {}
    for table in OUTBOX_TABLES:
        mark = after[table]
        (n,) = conn.execute(
            "SELECT coalesce(sum(rows), 0) FROM bucket_revisions "
            "WHERE store_id = ? AND table_name = ? AND (rev, bucket_ms) > (?, ?)",
            (store_id, table, mark.rev, mark.bucket_ms),
        ).fetchone()
        counts[table] = int(n)
    return counts


def oldest_unacknowledged_ms(conn: sqlite3.Connection, store_id: str, target: str) -> int | None:
    """When the oldest write not yet acknowledged was made (UTC ms); None if there is none.

    Args:
        conn: Open connection.
        store_id: The box's store.
        target: The hub's id of the store.
    """
    after = marks(conn, store_id, target)
    firsts = [
        entry.written_ms
        for table in OUTBOX_TABLES
        for entry in _entries_after(conn, store_id, table, after[table], 1)
    ]
    return min(firsts, default=None)


@dataclass(frozen=True, slots=True)
class DownlinkRecord:
    """One downlink item as received: accepted (with its payload) or rejected (a reason)."""

    kind: str
    item_id: str
    payload: dict[str, object] | None
    accepted: bool
    reason: str = ""


def record_downlink(
    conn: sqlite3.Connection, target: str, items: Sequence[DownlinkRecord], now_ms: int
) -> None:
    """Store the downlink items of one answer (for the issues that will act on them).

    Args:
        conn: Autocommit connection with no transaction open.
        target: The hub's id of the store.
        items: The items, already verified or rejected.
        now_ms: The box's clock.
    """
    if not items:
        return
    with transaction(conn):
        conn.executemany(
            "INSERT INTO sync_downlink (target, kind, item_id, payload, accepted, reason, "
            "received_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (target, i.kind, i.item_id[:128],
                 None if i.payload is None else json.dumps(i.payload, sort_keys=True),
                 int(i.accepted), i.reason, now_ms)
                for i in items
            ],
        )  # fmt: skip


def downlink(conn: sqlite3.Connection, target: str) -> list[DownlinkRecord]:
    """Every downlink item received for a target, oldest first.

    Args:
        conn: Open connection.
        target: The hub's id of the store.
    """
    return [
        DownlinkRecord(kind, item_id, None if payload is None else json.loads(payload),
                       bool(accepted), reason)
        for kind, item_id, payload, accepted, reason in conn.execute(
            "SELECT kind, item_id, payload, accepted, reason FROM sync_downlink "
            "WHERE target = ? ORDER BY id",
            (target,),
        )
    ]  # fmt: skip
