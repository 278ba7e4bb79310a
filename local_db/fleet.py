"""The box's config versions (``config_versions``, ``config_rejections``): reads and writes.

The newest ``config_versions`` row is the version in use; a hub version the box refused
is a ``config_rejections`` row, keyed by its downlink item, so it is refused once.
:func:`pending_config_items` is the hub's ``config_version`` items not yet acted on.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from local_db.connection import transaction


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """A config version the box ran."""

    version: int
    parent: int | None
    hash: str
    source: str
    applied_ms: int


@dataclass(frozen=True, slots=True)
class ConfigRejection:
    """A hub version the box refused."""

    item_id: str
    version: int
    error: str
    rejected_ms: int


def running_version(conn: sqlite3.Connection) -> ConfigVersion | None:
    """The version in use (the newest recorded), or None before the first."""
    row = conn.execute(
        "SELECT version, parent, hash, source, applied_ms FROM config_versions "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else ConfigVersion(*row)


def record_version(
    conn: sqlite3.Connection, version: ConfigVersion, item_id: str | None = None
) -> None:
    """Record the version now in use.

    Args:
        conn: Autocommit connection with no transaction open.
        version: The version.
        item_id: The hub's downlink item it came in (None: an edit on the box).
    """
    with transaction(conn):
        conn.execute(
            "INSERT INTO config_versions (version, parent, hash, source, item_id, applied_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (version.version, version.parent, version.hash, version.source, item_id,
             version.applied_ms),
        )  # fmt: skip


def record_rejection(conn: sqlite3.Connection, rejection: ConfigRejection) -> None:
    """Record a hub version the box refused (once per item).

    Args:
        conn: Autocommit connection with no transaction open.
        rejection: What was refused and why.
    """
    with transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO config_rejections (item_id, version, error, rejected_ms) "
            "VALUES (?, ?, ?, ?)",
            (rejection.item_id, rejection.version, rejection.error, rejection.rejected_ms),
        )


def last_rejection(conn: sqlite3.Connection) -> ConfigRejection | None:
    """The newest refusal, or None."""
    row = conn.execute(
        "SELECT item_id, version, error, rejected_ms FROM config_rejections "
        "ORDER BY rejected_ms DESC, version DESC LIMIT 1"
    ).fetchone()
    return None if row is None else ConfigRejection(*row)


def pending_config_items(
    conn: sqlite3.Connection, target: str
) -> list[tuple[str, dict[str, object]]]:
    """The accepted ``config_version`` items not yet applied nor refused, newest version last.

    Args:
        conn: Open connection.
        target: The hub's id of the store.
    """
    rows = conn.execute(
        "SELECT item_id, payload FROM sync_downlink d WHERE target = ? "
        "AND kind = 'config_version' AND accepted = 1 "
        "AND item_id NOT IN (SELECT item_id FROM config_rejections) "
        "AND item_id NOT IN (SELECT item_id FROM config_versions WHERE item_id IS NOT NULL) "
        "AND id = (SELECT max(id) FROM sync_downlink e WHERE e.target = d.target "
        "AND e.item_id = d.item_id AND e.accepted = 1)",
        (target,),
    ).fetchall()
    items = [(str(item_id), json.loads(payload)) for item_id, payload in rows]
    return sorted(items, key=lambda item: int(str(item[1].get("version", 0))))
