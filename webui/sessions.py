"""Server-side dashboard sessions, stored in ``web_sessions`` (:mod:`local_db.web_sessions`).

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

from local_db.web_sessions import delete_session, get_session, insert_session, touch_session

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
    insert_session(
        conn,
        _hash(session_id),
        username,
        now_ms=now_ms,
        expires_ms=now_ms + policy.lifetime_ms,
        idle_cutoff_ms=now_ms - policy.idle_ms,
    )
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
    row = get_session(read, key)
    if row is None:
        return None
    if now_ms >= row.expires_ms or now_ms - row.last_seen_ms >= policy.idle_ms:
        delete_session(write(), key)
        reason = "lifetime" if now_ms >= row.expires_ms else "idle timeout"
        logger.info("session of %s ended (%s)", row.username, reason)
        return None
    if now_ms - row.last_seen_ms >= TOUCH_EVERY_MS:
        touch_session(write(), key, now_ms)
    return row.username


def end_session(conn: sqlite3.Connection, session_id: str) -> None:
    """End one session (logout)."""
    delete_session(conn, _hash(session_id))
