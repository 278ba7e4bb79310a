"""Typed reads and writes of ``alert_log``: alerts raised, cleared and acknowledged.

One row per alert; at most one active (``cleared_ms IS NULL``) row per store, rule and
target (a unique partial index), so an alert is raised once per episode even across
restarts. These functions only store and read: :mod:`appliance.alerts` decides what to
raise and clear and who may acknowledge.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from local_db.connection import transaction

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


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert to raise or clear (what :func:`record_changes` stores).

    Attributes:
        action: ``raise`` (a new row unless one is active) or ``clear`` (the active row's
            ``cleared_ms``).
        rule_id: the rule.
        kind: the rule's kind (stored on raise).
        severity: ``info``, ``warning`` or ``critical`` (stored on raise).
        target: the zone or camera, ``""`` for the store or the box.
        t_ms: when (UTC ms).
        value: the measured value (stored on raise).
        message: one line for people (stored on raise).
    """

    action: Literal["raise", "clear"]
    rule_id: str
    kind: str
    severity: str
    target: str
    t_ms: int
    value: float | None
    message: str


def _records(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[AlertRecord]:
    cur = conn.cursor()
    cur.row_factory = None
    try:
        return [AlertRecord(*row) for row in cur.execute(sql, params).fetchall()]
    finally:
        cur.close()


def record_changes(
    conn: sqlite3.Connection, store_id: str, changes: Sequence[AlertChange]
) -> list[int]:
    """Write raises (new rows) and clears (``cleared_ms``) in one transaction.

    A raise while the same store, rule and target is active keeps the active row. If
    any change fails, none is stored.

    Args:
        conn: an autocommit connection with no transaction open.
        store_id: the store.
        changes: in order.

    Returns:
        The alert id of each change (a clear of nothing active gives -1).

    Raises:
        sqlite3.IntegrityError: an unknown severity.
    """
    ids = []
    with transaction(conn):
        for c in changes:
            key = (store_id, c.rule_id, c.target)
            if c.action == "raise":
                conn.execute(
                    "INSERT INTO alert_log (store_id, rule_id, target, kind, severity, "
                    "raised_ms, value, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (store_id, rule_id, target) WHERE cleared_ms IS NULL DO NOTHING",
                    (*key, c.kind, c.severity, c.t_ms, c.value, c.message),
                )
            row = conn.execute(
                "SELECT id FROM alert_log WHERE store_id = ? AND rule_id = ? AND target = ? "
                "AND cleared_ms IS NULL",
                key,
            ).fetchone()
            if c.action == "clear" and row is not None:
                conn.execute("UPDATE alert_log SET cleared_ms = ? WHERE id = ?", (c.t_ms, row[0]))
            ids.append(int(row[0]) if row is not None else -1)
    return ids


def clear_rules(
    conn: sqlite3.Connection, rule_ids: Sequence[str], cleared_ms: int, note: str
) -> int:
    """Clear every active alert of these rules, in any store, appending ``note`` to its message.

    Args:
        conn: a read-write connection.
        rule_ids: the rules (none: nothing happens).
        cleared_ms: when (UTC ms).
        note: appended as is (e.g. ``" (rule removed)"``).

    Returns:
        How many alerts were cleared.
    """
    if not rule_ids:
        return 0
    marks = ", ".join("?" for _ in rule_ids)
    return conn.execute(
        "UPDATE alert_log SET cleared_ms = ?, message = message || ? "
        f"WHERE cleared_ms IS NULL AND rule_id IN ({marks})",
        (cleared_ms, note, *rule_ids),
    ).rowcount


def get_alert(conn: sqlite3.Connection, alert_id: int) -> AlertRecord | None:
    """One alert by id.

    Args:
        conn: any connection to the box's database.
        alert_id: the row's id.

    Returns:
        The alert, or None.
    """
    rows = _records(conn, f"SELECT {_FIELDS} FROM alert_log WHERE id = ?", (alert_id,))
    return rows[0] if rows else None


def active_alerts(conn: sqlite3.Connection, store_id: str | None = None) -> list[AlertRecord]:
    """Alerts not cleared yet, most severe first, then newest first (the display page).

    Args:
        conn: any connection to the box's database.
        store_id: only this store's; every store's when None.

    Returns:
        The active alerts.
    """
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

    Returns:
        The alerts.
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


def alerts_active_between(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int
) -> list[AlertRecord]:
    """The store's alerts active at some moment of ``[t0, t1)``, oldest first.

    Args:
        conn: a connection to the box's database.
        store_id: the store.
        t0_ms: start (UTC ms, inclusive).
        t1_ms: end (exclusive).
    """
    return _records(
        conn,
        f"SELECT {_FIELDS} FROM alert_log WHERE store_id = ? AND raised_ms < ? "
        "AND (cleared_ms IS NULL OR cleared_ms > ?) ORDER BY raised_ms, id",
        [store_id, t1_ms, t0_ms],
    )


def set_acknowledged(conn: sqlite3.Connection, alert_id: int, user: str, acked_ms: int) -> bool:
    """Store who acknowledged an alert and when, unless it already was.

    Args:
        conn: a read-write connection.
        alert_id: the alert.
        user: who.
        acked_ms: when (UTC ms).

    Returns:
        True if it was acknowledged now; False if there is no such alert or it already was.
    """
    cur = conn.execute(
        "UPDATE alert_log SET acked_by = ?, acked_ms = ? WHERE id = ? AND acked_ms IS NULL",
        (user, acked_ms, alert_id),
    )
    return cur.rowcount == 1
