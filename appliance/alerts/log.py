"""The ``alert_log`` table: alerts raised, cleared and acknowledged (display page, history).

One row per alert; at most one active (``cleared_ms IS NULL``) row per store, rule and
target (a unique partial index), so an alert is raised once per episode even across
restarts.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.alerts.rules import Transition

logger = logging.getLogger(__name__)

_FIELDS = (
    "id, store_id, rule_id, kind, target, severity, raised_ms, cleared_ms, value, "
    "acked_by, acked_ms, message"
)
_SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One row of ``alert_log`` (times UTC ms; ``target`` ``""`` = the store or the box)."""

    id: int
    store_id: str
    rule_id: str
    kind: str
    target: str
    severity: str
    raised_ms: int
    cleared_ms: int | None
    value: float | None
    acked_by: str | None
    acked_ms: int | None
    message: str

    @property
    def active(self) -> bool:
        """Not cleared yet."""
        return self.cleared_ms is None


def _records(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[AlertRecord]:
    cur = conn.cursor()
    cur.row_factory = None
    try:
        return [AlertRecord(*row) for row in cur.execute(sql, params).fetchall()]
    finally:
        cur.close()


def record(conn: sqlite3.Connection, store_id: str, transitions: Sequence[Transition]) -> list[int]:
    """Write raises (new rows) and clears (``cleared_ms``) in one transaction.

    Returns:
        The alert id of each transition (a clear of nothing active gives -1).
    """
    ids = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for t in transitions:
            key = (store_id, t.rule.id, t.target)
            if t.action == "raise":
                conn.execute(
                    "INSERT INTO alert_log (store_id, rule_id, target, kind, severity, "
                    "raised_ms, value, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (store_id, rule_id, target) WHERE cleared_ms IS NULL DO NOTHING",
                    (*key, t.rule.kind, t.rule.severity, t.t_ms, t.value, t.message),
                )
            row = conn.execute(
                "SELECT id FROM alert_log WHERE store_id = ? AND rule_id = ? AND target = ? "
                "AND cleared_ms IS NULL",
                key,
            ).fetchone()
            if t.action == "clear" and row is not None:
                conn.execute("UPDATE alert_log SET cleared_ms = ? WHERE id = ?", (t.t_ms, row[0]))
            ids.append(int(row[0]) if row is not None else -1)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return ids


def get_alert(conn: sqlite3.Connection, alert_id: int) -> AlertRecord | None:
    """One alert by id."""
    rows = _records(conn, f"SELECT {_FIELDS} FROM alert_log WHERE id = ?", (alert_id,))
    return rows[0] if rows else None


def active_alerts(conn: sqlite3.Connection, store_id: str | None = None) -> list[AlertRecord]:
    """Alerts not cleared yet, most severe first, then newest first (the display page)."""
    where, params = "cleared_ms IS NULL", []
    if store_id is not None:
        where, params = where + " AND store_id = ?", [store_id]
    return _records(
        conn,
        f"SELECT {_FIELDS} FROM alert_log WHERE {where} "
        f"ORDER BY {_SEVERITY_ORDER}, raised_ms DESC, id DESC",
        params,
    )


def alert_history(
    conn: sqlite3.Connection,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    rule_id: str | None = None,
    limit: int = 200,
) -> list[AlertRecord]:
    """Alerts raised in ``[since, until)``, newest first.

    Args:
        conn: a connection to the box's database.
        since_ms: raised at or after (UTC ms); no bound when None.
        until_ms: raised before; no bound when None.
        rule_id: only this rule's alerts.
        limit: at most this many rows.
    """
    where, params = ["1 = 1"], []
    for clause, value in (
        ("raised_ms >= ?", since_ms),
        ("raised_ms < ?", until_ms),
        ("rule_id = ?", rule_id),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return _records(
        conn,
        f"SELECT {_FIELDS} FROM alert_log WHERE {' AND '.join(where)} "
        "ORDER BY raised_ms DESC, id DESC LIMIT ?",
        [*params, limit],
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
    cur = conn.execute(
        "UPDATE alert_log SET acked_by = ?, acked_ms = ? WHERE id = ? AND acked_ms IS NULL",
        (user, when, alert_id),
    )
    if cur.rowcount:
        logger.info("alert %d acknowledged by %s", alert_id, user)
    return cur.rowcount == 1
