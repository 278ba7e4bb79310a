"""Typed reads and writes of the dashboard's accounts (``web_users``, ``web_settings``).

These functions only store and read: :mod:`webui.accounts` validates names and
passwords, hashes passwords and setup tokens, and says why something is refused.
``web_settings`` holds the cookie-signing key and the pending setup token's hash.
"""

from __future__ import annotations

import hmac
import sqlite3
from dataclasses import dataclass
from typing import Literal

from local_db.connection import transaction
from local_db.web_sessions import delete_user_sessions

#: What :func:`create_first_user` did: ``closed`` = no token pending or an account exists.
FirstUserOutcome = Literal["created", "closed", "wrong_token"]


@dataclass(frozen=True, slots=True)
class UserRow:
    """One account, without its password hash.

    Attributes:
        username: the sign-in name.
        role: ``staff``, ``manager`` or ``installer`` (the table's CHECK).
        created_ms: when it was made (UTC ms).
    """

    username: str
    role: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Credentials:
    """What signing in checks: the stored password hash and the account's role."""

    password_hash: str
    role: str


def insert_user(
    conn: sqlite3.Connection, username: str, password_hash: str, role: str, created_ms: int
) -> bool:
    """Add an account unless the name is taken.

    Args:
        conn: a read-write connection (inside the caller's transaction if one is open).
        username: the sign-in name.
        password_hash: the hash to check passwords against.
        role: ``staff``, ``manager`` or ``installer``.
        created_ms: when (UTC ms).

    Returns:
        True if it was added; False if the name is taken (nothing changed).

    Raises:
        sqlite3.IntegrityError: an unknown role.
    """
    return (
        conn.execute(
            "INSERT INTO web_users (username, password_hash, role, created_ms) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
            (username, password_hash, role, created_ms),
        ).rowcount
        == 1
    )


def delete_user(conn: sqlite3.Connection, username: str) -> bool:
    """Remove an account (its sessions go with it).

    Args:
        conn: a read-write connection.
        username: the account.

    Returns:
        Whether it existed.
    """
    return conn.execute("DELETE FROM web_users WHERE username = ?", (username,)).rowcount > 0


def set_password_hash(conn: sqlite3.Connection, username: str, password_hash: str) -> int | None:
    """Store a new password hash and end every session of the account, in one transaction.

    Args:
        conn: an autocommit connection with no transaction open.
        username: the account.
        password_hash: the new hash.

    Returns:
        How many sessions were ended; None if there is no such account (nothing changed).
    """
    with transaction(conn):
        updated = conn.execute(
            "UPDATE web_users SET password_hash = ? WHERE username = ?", (password_hash, username)
        ).rowcount
        if not updated:
            return None
        return delete_user_sessions(conn, username)


def list_users(conn: sqlite3.Connection) -> list[UserRow]:
    """Every account, by name.

    Args:
        conn: any connection to the box's database.

    Returns:
        The accounts, sorted by username.
    """
    rows = conn.execute(
        "SELECT username, role, created_ms FROM web_users ORDER BY username"
    ).fetchall()
    return [UserRow(str(name), str(role), int(created)) for name, role, created in rows]


def get_user(conn: sqlite3.Connection, username: str) -> UserRow | None:
    """The account called ``username``, if any.

    Args:
        conn: any connection to the box's database.
        username: the sign-in name.

    Returns:
        The account, or None.
    """
    row = conn.execute(
        "SELECT role, created_ms FROM web_users WHERE username = ?", (username,)
    ).fetchone()
    return None if row is None else UserRow(username, str(row[0]), int(row[1]))


def get_credentials(conn: sqlite3.Connection, username: str) -> Credentials | None:
    """The password hash and role of ``username``, if the account exists.

    Args:
        conn: any connection to the box's database.
        username: the sign-in name.

    Returns:
        Its credentials, or None.
    """
    row = conn.execute(
        "SELECT password_hash, role FROM web_users WHERE username = ?", (username,)
    ).fetchone()
    return None if row is None else Credentials(str(row[0]), str(row[1]))


def has_users(conn: sqlite3.Connection) -> bool:
    """Whether any account exists (a fresh box has none).

    Args:
        conn: any connection to the box's database.

    Returns:
        True once an account was made.
    """
    return conn.execute("SELECT 1 FROM web_users LIMIT 1").fetchone() is not None


def get_setting(conn: sqlite3.Connection, key: str) -> str | None:
    """A value of ``web_settings``.

    Args:
        conn: any connection to the box's database.
        key: the setting's name.

    Returns:
        Its value, or None if it is not set.
    """
    row = conn.execute("SELECT value FROM web_settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set (insert or replace) a value of ``web_settings``.

    Args:
        conn: a read-write connection.
        key: the setting's name.
        value: its new value.
    """
    conn.execute(
        "INSERT INTO web_settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def add_setting(conn: sqlite3.Connection, key: str, value: str) -> str:
    """Set a value of ``web_settings`` unless it is set already, in one transaction.

    Two connections adding the same key at once end with one value, the first's.

    Args:
        conn: an autocommit connection with no transaction open.
        key: the setting's name.
        value: the value to store if there is none.

    Returns:
        The value stored now (``value``, or the one that was there).
    """
    with transaction(conn):
        stored = get_setting(conn, key)
        if stored is not None:
            return stored
        set_setting(conn, key, value)
    return value


def create_first_user(
    conn: sqlite3.Connection,
    *,
    token_key: str,
    token_hash: str,
    username: str,
    password_hash: str,
    role: str,
    created_ms: int,
) -> FirstUserOutcome:
    """Make the box's first account with the pending setup token, which it then deletes.

    One transaction: the token's check, the account and the token's removal, so of two
    connections racing with the right token one makes the account and the other finds
    setup closed.

    Args:
        conn: an autocommit connection with no transaction open.
        token_key: the ``web_settings`` key of the pending token's hash.
        token_hash: the hash of the token offered (compared in constant time).
        username: the new account's name.
        password_hash: its password hash.
        role: its role.
        created_ms: when (UTC ms).

    Returns:
        ``created``; ``closed`` (nothing pending, or an account exists) or ``wrong_token``,
        and then nothing changed.

    Raises:
        sqlite3.IntegrityError: an unknown role (nothing changed).
    """
    with transaction(conn):
        stored = get_setting(conn, token_key)
        if stored is None or has_users(conn):
            return "closed"
        if not hmac.compare_digest(stored, token_hash):
            return "wrong_token"
        insert_user(conn, username, password_hash, role, created_ms)
        conn.execute("DELETE FROM web_settings WHERE key = ?", (token_key,))
    return "created"
