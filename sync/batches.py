"""Building the next batch from the outbox: oldest writes first, bounded, saved before it is sent.

A batch takes the entries past the acknowledged marks (:mod:`local_db.outbox`) in the
order they were written, whole buckets only, until :data:`ROW_BUDGET` rows; if its body
is still over the wire's bounds the budget is halved. Its id and bounds are saved as
the pending batch *before* it is first sent; until the hub acknowledges it, every
attempt (after a restart too) rebuilds the same id from the same bounds. A bucket
rewritten meanwhile has left the bounds with its new revision and goes in a later
batch, so nothing is lost and the hub keeps the newest values.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Final

from local_db import outbox
from wire import Batch, BodyTooLargeError, Row, encode_batch, new_batch_id

logger = logging.getLogger(__name__)

#: Rows a batch aims at: a fifth of the wire's ``MAX_ROWS``, so that the gzip body stays
#: well under ``MAX_BODY_BYTES`` and one request takes the hub a second or so.
ROW_BUDGET: Final = 10_000


def wire_row(table: str, row: dict[str, object]) -> Row:
    """A box row as the wire carries it (the dwell histogram's JSON text as a list)."""
    if table == "agg_dwell" and isinstance(row.get("hist"), str):
        return {**row, "hist": json.loads(str(row["hist"]))}
    return dict(row)


def batch_of(
    conn: sqlite3.Connection, store_id: str, target: str, pending: outbox.PendingBatch
) -> Batch:
    """The batch a pending one stands for, its rows read from the box's tables now.

    Args:
        conn: Open connection.
        store_id: The box's store (whose rows are read).
        target: The hub's id of the store (the batch's ``store_id``).
        pending: The batch in flight.
    """
    tables = {
        table: [
            wire_row(table, row) for row in outbox.rows_between(conn, store_id, table, after, upto)
        ]
        for table, (after, upto) in pending.bounds.items()
    }
    return Batch(target, pending.batch_id, pending.created_ms, tables)


def plan(
    conn: sqlite3.Connection, store_id: str, target: str, now_ms: int, budget: int = ROW_BUDGET
) -> outbox.PendingBatch | None:
    """A new batch of the oldest entries past the marks (not saved); None if all are sent.

    Args:
        conn: Open connection.
        store_id: The box's store.
        target: The hub's id of the store.
        now_ms: Its creation time (UTC ms).
        budget: At most this many rows, but always one whole bucket.
    """
    after = outbox.marks(conn, store_id, target)
    chosen: list[outbox.Entry] = []
    total = 0
    for entry in outbox.next_entries(conn, store_id, after, budget):
        if chosen and total + entry.rows > budget:
            break
        chosen.append(entry)
        total += entry.rows
    if not chosen:
        return None
    bounds = {entry.table: (after[entry.table], entry.mark) for entry in chosen}
    return outbox.PendingBatch(new_batch_id(), now_ms, bounds, total)


def next_batch(
    conn: sqlite3.Connection, store_id: str, target: str, now_ms: int, budget: int = ROW_BUDGET
) -> tuple[outbox.PendingBatch, bytes] | None:
    """The batch to send now and its body: the pending one, else a new one (saved first).

    Args:
        conn: Autocommit connection with no transaction open.
        store_id: The box's store.
        target: The hub's id of the store.
        now_ms: The box's clock (a new batch's ``created_ms``).
        budget: Rows a new batch aims at.

    Returns:
        ``(pending, body)``, or None when everything is acknowledged.

    Raises:
        BodyTooLargeError: A single bucket's rows are over the wire's bounds.
    """
    pending = outbox.pending_batch(conn, store_id, target)
    if pending is not None:
        return pending, encode_batch(batch_of(conn, store_id, target, pending))
    while True:
        planned = plan(conn, store_id, target, now_ms, budget)
        if planned is None:
            return None
        try:
            body = encode_batch(batch_of(conn, store_id, target, planned))
        except BodyTooLargeError as exc:
            if budget <= 1:
                raise
            logger.info("sync: %d rows are too large a batch (%s); halving", planned.rows, exc)
            budget //= 2
            continue
        saved = outbox.save_pending(conn, store_id, target, planned)
        if saved is planned:
            return saved, body
        return saved, encode_batch(batch_of(conn, store_id, target, saved))
