"""The alert log: alerts raised, cleared and acknowledged (display page, history).

Stored in ``alert_log`` through :mod:`local_db.alert_log`, whose reads and record type
this module re-exports; it turns the rules' transitions into log changes and checks
who acknowledges.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence

from appliance.alerts.rules import Transition
from local_db.alert_log import (
    AlertChange,
    AlertRecord,
    active_alerts,
    alert_history,
    get_alert,
    record_changes,
    set_acknowledged,
)

__all__ = ["AlertRecord", "acknowledge", "active_alerts", "alert_history", "get_alert", "record"]

logger = logging.getLogger(__name__)


def record(conn: sqlite3.Connection, store_id: str, transitions: Sequence[Transition]) -> list[int]:
    """Write raises (new rows) and clears (``cleared_ms``) in one transaction.

    Returns:
        The alert id of each transition (a clear of nothing active gives -1).
    """
    return record_changes(
        conn,
        store_id,
        [
            AlertChange(
                t.action,
                t.rule.id,
                t.rule.kind,
                t.rule.severity,
                t.target,
                t.t_ms,
                t.value,
                t.message,
            )
            for t in transitions
        ],
    )


def acknowledge(
    conn: sqlite3.Connection, alert_id: int, user: str, now_ms: int | None = None
) -> bool:
    """Record that ``user`` has seen an alert (silences the buzzer for it).

    Returns:
        True if it was acknowledged now; False if there is no such alert or it
        already was.
    """
    if not user.strip():
        raise ValueError("acknowledge needs a user name")
    when = now_ms if now_ms is not None else int(time.time() * 1000)
    acked = set_acknowledged(conn, alert_id, user, when)
    if acked:
        logger.info("alert %d acknowledged by %s", alert_id, user)
    return acked
