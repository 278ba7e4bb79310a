"""What ``footfall sync status`` shows: the outbox of one store at one hub."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from local_db import outbox


@dataclass(frozen=True)
class SyncStatus:
    """The outbox's state.

    Attributes:
        pending_rows: Rows not yet acknowledged, per table.
        pending_batch: The batch in flight (its id, rows, attempts), if any.
        state: The last ack, the failures in a row, the last error.
        lag_s: Seconds since the oldest unacknowledged write (0: all sent).
        downlink_accepted: Downlink items received that verified.
        downlink_rejected: Those that did not.
    """

    pending_rows: dict[str, int]
    pending_batch: outbox.PendingBatch | None
    state: outbox.SyncState
    lag_s: float
    downlink_accepted: int
    downlink_rejected: int

    def as_dict(self) -> dict[str, object]:
        """As JSON-ready data."""
        batch = self.pending_batch
        return {
            "pending_rows": self.pending_rows,
            "pending_batch": None
            if batch is None
            else {"batch_id": batch.batch_id, "rows": batch.rows, "attempts": batch.attempts},
            "last_ack_ms": self.state.last_ack_ms,
            "last_ack_batch": self.state.last_ack_batch,
            "failures": self.state.failures,
            "retry_at_ms": self.state.retry_at_ms,
            "error": self.state.error,
            "rejected": self.state.rejected,
            "lag_s": self.lag_s,
            "downlink": {"accepted": self.downlink_accepted, "rejected": self.downlink_rejected},
        }


def lag_s(conn: sqlite3.Connection, store_id: str, target: str, now_ms: int) -> float:
    """Seconds since the oldest write the hub has not acknowledged (0: everything is).

    Args:
        conn: Open connection (migrated).
        store_id: The box's store.
        target: The hub's id of the store.
        now_ms: The box's clock.
    """
    oldest = outbox.oldest_unacknowledged_ms(conn, store_id, target)
    return 0.0 if oldest is None else max(0.0, (now_ms - oldest) / 1000)


def sync_status(conn: sqlite3.Connection, store_id: str, target: str, now_ms: int) -> SyncStatus:
    """The outbox of ``store_id`` sent as ``target``.

    Args:
        conn: Open connection (migrated).
        store_id: The box's store.
        target: The hub's id of the store.
        now_ms: The box's clock (for the lag).
    """
    items = outbox.downlink(conn, target)
    accepted = sum(item.accepted for item in items)
    return SyncStatus(
        outbox.pending_rows(conn, store_id, target),
        outbox.pending_batch(conn, store_id, target),
        outbox.sync_state(conn, store_id, target),
        lag_s(conn, store_id, target, now_ms),
        accepted,
        len(items) - accepted,
    )
