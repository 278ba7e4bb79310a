"""Typed reads and writes of ``web_sessions``: the dashboard's server-side sessions.

A row is keyed by the SHA-256 of the cookie's random id (never the id itself). These
functions only store and read; :mod:`webui.sessions` makes the ids and decides when a
session has ended. Deleting an account deletes its sessions (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from local_db.connection import transaction


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session (times UTC ms).

    Attributes:
        username: whose session it is.
        created_ms: when it started (sign-in).
        last_seen_ms: when a request last used it (the idle clock).
        expires_ms: when it ends however busy it is.
    """

    username: str
    created_ms: int
    last_seen_ms: int
    expires_ms: int


def insert_session(
    conn: sqlite3.Connection,
    id_hash: str,
    username: str,
    *,
    now_ms: int,
    expires_ms: int,
    idle_cutoff_ms: int,
) -> None:
    """Store a new session, and delete the sessions that have ended, in one transaction.

    Args:
        conn: an autocommit connection with no transaction open.
        id_hash: the hash of the session's id.
        username: an existing account.
        now_ms: the time now: the session's start and last use; a session with
            ``expires_ms <= now_ms`` has ended.
        expires_ms: when the new session ends.
        idle_cutoff_ms: a session last used at or before this has ended.

    Raises:
        sqlite3.IntegrityError: no such account, or the hash is already stored
            (then nothing was deleted either).
    """
    with transaction(conn):
        conn.execute(
            "DELETE FROM web_sessions WHERE expires_ms <= ? OR last_seen_ms <= ?",
            (now_ms, idle_cutoff_ms),
        )
        conn.execute(
            "INSERT INTO web_sessions (id_hash, username, created_ms, last_seen_ms, expires_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (id_hash, username, now_ms, now_ms, expires_ms),
        )


def get_session(conn: sqlite3.Connection, id_hash: str) -> SessionRow | None:
    """The session stored under ``id_hash``, if any.

    Args:
        conn: any connection to the box's database.
        id_hash: the hash of the session's id.

    Returns:
        The row, or None.
    """
    row = conn.execute(
        "SELECT username, created_ms, last_seen_ms, expires_ms FROM web_sessions WHERE id_hash = ?",
        (id_hash,),
    ).fetchone()
    if row is None:
        return None
    return SessionRow(str(row[0]), int(row[1]), int(row[2]), int(row[3]))


def touch_session(conn: sqlite3.Connection, id_hash: str, now_ms: int) -> bool:
    """Set a session's last use to ``now_ms``.

    Args:
        conn: a read-write connection.
        id_hash: the hash of the session's id.
        now_ms: the time of the request.

    Returns:
        Whether the session exists.
    """
    return (
        conn.execute(
            "UPDATE web_sessions SET last_seen_ms = ? WHERE id_hash = ?", (now_ms, id_hash)
        ).rowcount
        > 0
    )


def delete_session(conn: sqlite3.Connection, id_hash: str) -> bool:
    """End one session.

    Args:
        conn: a read-write connection.
        id_hash: the hash of the session's id.

    Returns:
        Whether it existed.
    """
    return conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,)).rowcount > 0


def delete_user_sessions(conn: sqlite3.Connection, username: str) -> int:
    """End every session of ``username``, inside the caller's transaction if one is open.

    Args:
        conn: a read-write connection.
        username: the account.

    Returns:
        How many sessions there were.
    """
    return conn.execute("DELETE FROM web_sessions WHERE username = ?", (username,)).rowcount
