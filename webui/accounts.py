"""Dashboard accounts, the one-time setup token and the cookie-signing secret, in SQLite.

Passwords are stored as werkzeug scrypt hashes. A fresh box has no account and
no default password: :func:`issue_setup_token` makes a one-time token (printed
on the console, stored only as a hash) that creates the first installer account.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Literal, get_args

from werkzeug.security import check_password_hash, generate_password_hash

from webui.sessions import end_user_sessions

logger = logging.getLogger(__name__)

Role = Literal["staff", "manager", "installer"]
ROLES: tuple[Role, ...] = get_args(Role)
MIN_PASSWORD_LENGTH = 10
_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_MIN_NAME_IN_PASSWORD = 3
# Checked against when the username is unknown, so both paths cost one scrypt.
_DUMMY_HASH = generate_password_hash("footfall-timing-equaliser")


class AccountError(ValueError):
    """A username, password or role that cannot be accepted, with the reason."""


@dataclass(frozen=True)
class User:
    """A signed-in dashboard user."""

    username: str
    role: Role


def _setting(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM web_settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO web_settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def secret_key(conn: sqlite3.Connection) -> str:
    """The key that signs cookies (session id, CSRF token); made once per box, kept in the db."""
    key = _setting(conn, "secret_key")
    if key is None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            key = _setting(conn, "secret_key")
            if key is None:
                key = secrets.token_hex(32)
                _set_setting(conn, "secret_key", key)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return key


def _validate_password(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    # a name of one or two letters is in too many good passwords to forbid
    if len(username) >= _MIN_NAME_IN_PASSWORD and username in password.lower():
        raise AccountError("password: must not contain the username")


def _validate(username: str, password: str, role: str) -> None:
    if not (1 <= len(username) <= 64) or not set(username) <= _USERNAME_CHARS:
        raise AccountError(
            f"username {username!r}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        )
    _validate_password(username, password)
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")


def create_user(conn: sqlite3.Connection, username: str, password: str, role: str) -> User:
    """Add an account.

    Raises:
        AccountError: a bad username, a short password, an unknown role, or a taken name.
    """
    _validate(username, password, role)
    try:
        conn.execute(
            "INSERT INTO web_users (username, password_hash, role, created_ms) VALUES (?, ?, ?, ?)",
            (username, generate_password_hash(password), role, round(time.time() * 1000)),
        )
    except sqlite3.IntegrityError as exc:
        raise AccountError(f"username {username!r} is taken") from exc
    logger.info("account %s created with role %s", username, role)
    return User(username, role)  # type: ignore[arg-type]  # validated above


def delete_user(conn: sqlite3.Connection, username: str) -> bool:
    """Remove an account; returns whether it existed."""
    deleted = conn.execute("DELETE FROM web_users WHERE username = ?", (username,)).rowcount > 0
    if deleted:
        logger.info("account %s deleted", username)
    return deleted


def change_password(conn: sqlite3.Connection, username: str, new_password: str) -> int:
    """Set a new password and end every session of the account, in one transaction.

    Returns:
        How many sessions were ended.

    Raises:
        AccountError: the new password is not acceptable, or there is no such account.
    """
    _validate_password(username, new_password)
    new_hash = generate_password_hash(new_password)
    conn.execute("BEGIN IMMEDIATE")
    try:
        updated = conn.execute(
            "UPDATE web_users SET password_hash = ? WHERE username = ?", (new_hash, username)
        ).rowcount
        if not updated:
            raise AccountError(f"username {username!r}: no such account")
        ended = end_user_sessions(conn, username)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.info("password of %s changed", username)
    return ended


def list_users(conn: sqlite3.Connection) -> list[User]:
    """Every account, by name."""
    rows = conn.execute("SELECT username, role FROM web_users ORDER BY username").fetchall()
    return [User(str(name), role) for name, role in rows]


def get_user(conn: sqlite3.Connection, username: str) -> User | None:
    """The account called ``username``, if any."""
    row = conn.execute("SELECT role FROM web_users WHERE username = ?", (username,)).fetchone()
    return None if row is None else User(username, row[0])


def authenticate(conn: sqlite3.Connection, username: str, password: str) -> User | None:
    """The user if the password is right, else None (same cost whether or not the name exists)."""
    row = conn.execute(
        "SELECT password_hash, role FROM web_users WHERE username = ?", (username,)
    ).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(str(row[0]), password):
        return None
    return User(username, row[1])


def has_users(conn: sqlite3.Connection) -> bool:
    """Whether any account exists (a fresh box has none)."""
    return conn.execute("SELECT 1 FROM web_users LIMIT 1").fetchone() is not None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_setup_token(conn: sqlite3.Connection) -> str | None:
    """A new one-time setup token while the box has no account, else None.

    Only its hash is stored; issuing again replaces the previous token.
    """
    if has_users(conn):
        return None
    token = secrets.token_urlsafe(18)
    _set_setting(conn, "setup_token_hash", _token_hash(token))
    return token


def redeem_setup_token(conn: sqlite3.Connection, token: str, username: str, password: str) -> User:
    """Create the first (installer) account with the setup token, which then stops working.

    Raises:
        AccountError: no token is pending, the token is wrong, or the account is invalid.
    """
    _validate(username, password, "installer")
    conn.execute("BEGIN IMMEDIATE")
    try:
        stored = _setting(conn, "setup_token_hash")
        if stored is None or has_users(conn):
            raise AccountError("setup is closed: this box already has an account")
        if not hmac.compare_digest(stored, _token_hash(token.strip())):
            raise AccountError("setup token: wrong token")
        user = create_user(conn, username, password, "installer")
        conn.execute("DELETE FROM web_settings WHERE key = 'setup_token_hash'")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return user
