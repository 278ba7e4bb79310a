"""Dashboard accounts, the one-time setup token and the cookie-signing secret.

They are stored in ``web_users`` and ``web_settings`` (:mod:`local_db.web_users`);
this module validates, hashes and says why something is refused.

Passwords are stored as werkzeug scrypt hashes. A fresh box has no account and
no default password: :func:`issue_setup_token` makes a one-time token (printed
on the console, stored only as a hash) that creates the first installer account.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Literal, cast, get_args

from werkzeug.security import check_password_hash, generate_password_hash

from local_db import web_users

logger = logging.getLogger(__name__)

Role = Literal["staff", "manager", "installer"]
ROLES: tuple[Role, ...] = get_args(Role)
MIN_PASSWORD_LENGTH = 10
_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_MIN_NAME_IN_PASSWORD = 3
# Checked against when the username is unknown, so both paths cost one scrypt.
_DUMMY_HASH = generate_password_hash("footfall-timing-equaliser")
_SECRET_KEY = "secret_key"
_SETUP_TOKEN = "setup_token_hash"


class AccountError(ValueError):
    """A username, password or role that cannot be accepted, with the reason."""


@dataclass(frozen=True)
class User:
    """A signed-in dashboard user."""

    username: str
    role: Role


def _user(username: str, role: str) -> User:
    return User(username, cast(Role, role))  # the table's CHECK allows only the roles


def secret_key(conn: sqlite3.Connection) -> str:
    """The key that signs cookies (session id, CSRF token); made once per box, kept in the db."""
    key = web_users.get_setting(conn, _SECRET_KEY)
    if key is None:
        key = web_users.add_setting(conn, _SECRET_KEY, secrets.token_hex(32))
    return key


def _now_ms() -> int:
    return round(time.time() * 1000)


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
    if not web_users.insert_user(conn, username, generate_password_hash(password), role, _now_ms()):
        raise AccountError(f"username {username!r} is taken")
    logger.info("account %s created with role %s", username, role)
    return _user(username, role)


def delete_user(conn: sqlite3.Connection, username: str) -> bool:
    """Remove an account; returns whether it existed."""
    deleted = web_users.delete_user(conn, username)
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
    ended = web_users.set_password_hash(conn, username, generate_password_hash(new_password))
    if ended is None:
        raise AccountError(f"username {username!r}: no such account")
    logger.info("password of %s changed", username)
    return ended


def list_users(conn: sqlite3.Connection) -> list[User]:
    """Every account, by name."""
    return [_user(row.username, row.role) for row in web_users.list_users(conn)]


def get_user(conn: sqlite3.Connection, username: str) -> User | None:
    """The account called ``username``, if any."""
    row = web_users.get_user(conn, username)
    return None if row is None else _user(username, row.role)


def authenticate(conn: sqlite3.Connection, username: str, password: str) -> User | None:
    """The user if the password is right, else None (same cost whether or not the name exists)."""
    creds = web_users.get_credentials(conn, username)
    if creds is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(creds.password_hash, password):
        return None
    return _user(username, creds.role)


def has_users(conn: sqlite3.Connection) -> bool:
    """Whether any account exists (a fresh box has none)."""
    return web_users.has_users(conn)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_setup_token(conn: sqlite3.Connection) -> str | None:
    """A new one-time setup token while the box has no account, else None.

    Only its hash is stored; issuing again replaces the previous token.
    """
    if has_users(conn):
        return None
    token = secrets.token_urlsafe(18)
    web_users.set_setting(conn, _SETUP_TOKEN, _token_hash(token))
    return token


def redeem_setup_token(conn: sqlite3.Connection, token: str, username: str, password: str) -> User:
    """Create the first (installer) account with the setup token, which then stops working.

    Raises:
        AccountError: no token is pending, the token is wrong, or the account is invalid.
    """
    _validate(username, password, "installer")
    outcome = web_users.create_first_user(
        conn,
        token_key=_SETUP_TOKEN,
        token_hash=_token_hash(token.strip()),
        username=username,
        password_hash=generate_password_hash(password),
        role="installer",
        created_ms=_now_ms(),
    )
    if outcome == "closed":
        raise AccountError("setup is closed: this box already has an account")
    if outcome == "wrong_token":
        raise AccountError("setup token: wrong token")
    logger.info("account %s created with role installer", username)
    return _user(username, "installer")
