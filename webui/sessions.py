"""Server-side dashboard sessions in SQLite (``web_sessions``).

The browser's cookie carries only a random session id; the database keeps its
SHA-256, the user, when it started, when it was last used and when it ends. A
session ends at a fixed time after sign-in (never extended), after an idle
spell, on logout, and for every session of a user when their password changes
or their account is removed. Ending one is deleting its row, so a copied cookie
dies with the original.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: How stale ``last_seen_ms`` may get before a request writes it again.
TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True)
class SessionPolicy:
    """How long sessions last.

    Attributes:
        lifetime_ms: from sign-in to the end, however busy.
        idle_ms: unused for this long, a session ends.
    """

    lifetime_ms: int
    idle_ms: int


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(
    conn: sqlite3.Connection, username: str, now_ms: int, policy: SessionPolicy
) -> str:
    """Open a session for ``username``; returns the id for the cookie (stored only hashed).

    Sessions that have ended by now are swept at the same time.
    """
    session_id = secrets.token_urlsafe(32)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "DELETE FROM web_sessions WHERE expires_ms <= ? OR last_seen_ms <= ?",
            (now_ms, now_ms - policy.idle_ms),
        )
        conn.execute(
            "INSERT INTO web_sessions (id_hash, username, created_ms, last_seen_ms, expires_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (_hash(session_id), username, now_ms, now_ms, now_ms + policy.lifetime_ms),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return session_id


def session_user(
    read: sqlite3.Connection,
    write: Callable[[], sqlite3.Connection],
    session_id: str,
    now_ms: int,
    policy: SessionPolicy,
) -> str | None:
    """The user of a live session, or None if it has ended (then its row is deleted).

    Reads through ``read``; the few writes (the idle clock, at most once a minute,
    and deleting an ended session) go through the connection ``write`` returns.
    """
    key = _hash(session_id)
    row = read.execute(
        "SELECT username, last_seen_ms, expires_ms FROM web_sessions WHERE id_hash = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    username, last_seen_ms, expires_ms = str(row[0]), int(row[1]), int(row[2])
    if now_ms >= expires_ms or now_ms - last_seen_ms >= policy.idle_ms:
        write().execute("DELETE FROM web_sessions WHERE id_hash = ?", (key,))
        reason = "lifetime" if now_ms >= expires_ms else "idle timeout"
        logger.info("session of %s ended (%s)", username, reason)
        return None
    if now_ms - last_seen_ms >= TOUCH_EVERY_MS:
        write().execute("UPDATE web_sessions SET last_seen_ms = ? WHERE id_hash = ?", (now_ms, key))
    return username


def end_session(conn: sqlite3.Connection, session_id: str) -> None:
    """End one session (logout)."""
    conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (_hash(session_id),))


def end_user_sessions(conn: sqlite3.Connection, username: str) -> int:
    """End every session of ``username``; returns how many there were.

    Runs inside the caller's transaction if one is open.
    """
    return conn.execute("DELETE FROM web_sessions WHERE username = ?", (username,)).rowcount
