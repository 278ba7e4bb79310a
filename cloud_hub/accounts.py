"""The dashboard's accounts, roles, server-side sessions and one-time setup token.

Roles: ``admin`` (every store, the users page, POST everything), ``manager`` (the
stores of her regions only, may import POS data for them) and ``viewer`` (read-only;
every store, or the stores of the regions she is given). :meth:`User.sees` is the one
scoping rule every query goes through (:func:`visible_stores`). Passwords are stored as
werkzeug scrypt hashes; sessions as the SHA-256 of the random id the cookie carries
(ending one deletes its row). A fresh hub has no account and no default password:
:func:`issue_setup_token` makes a one-time token (printed by ``footfall hub init`` and
``hub serve``, stored hashed) that creates the first admin.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Final, Literal, get_args

from sqlalchemy import Connection, delete, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from cloud_hub.schema import (
    hub_sessions,
    hub_settings,
    hub_user_regions,
    hub_users,
    regions,
    stores,
)

logger = logging.getLogger(__name__)

Role = Literal["admin", "manager", "viewer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
MIN_PASSWORD_LENGTH: Final = 10
SESSION_LIFETIME_MS: Final = 12 * 3_600_000
SESSION_IDLE_MS: Final = 2 * 3_600_000
TOUCH_EVERY_MS: Final = 60_000
_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_DUMMY_HASH = generate_password_hash("footfall-hub-timing-equaliser")


class AccountError(ValueError):
    """A username, password, role or region that cannot be accepted, with the reason."""


@dataclass(frozen=True)
class User:
    """A dashboard account: its role and the regions it is limited to (none: every store)."""

    username: str
    role: Role
    regions: frozenset[str] = frozenset()

    @property
    def sees_all(self) -> bool:
        """Whether every store is visible (an admin, or a viewer bound to no region)."""
        return self.role == "admin" or not self.regions

    def sees(self, region_id: str) -> bool:
        """Whether a store of ``region_id`` is visible to this user."""
        return self.sees_all or region_id in self.regions

    @property
    def can_write(self) -> bool:
        """Whether the user may change anything (viewers may not)."""
        return self.role != "viewer"


def _validate(
    conn: Connection, username: str, password: str, role: str, region_ids: set[str]
) -> None:
    if not (1 <= len(username) <= 64) or not set(username) <= _USERNAME_CHARS:
        raise AccountError(
            f"username {username!r}: use 1-64 lower-case letters, digits, '.', '_' or '-'"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    if role == "manager" and not region_ids:
        raise AccountError("a manager needs at least one region (--region)")
    if role == "admin" and region_ids:
        raise AccountError("an admin sees every region; give no region")
    known = set(conn.execute(select(regions.c.id).where(regions.c.id.in_(region_ids))).scalars())
    if region_ids - known:
        raise AccountError(f"unknown region(s): {', '.join(sorted(region_ids - known))}")


def create_user(
    conn: Connection, username: str, password: str, role: str, region_ids: set[str] | None = None
) -> User:
    """Add an account (in the caller's transaction).

    Raises:
        AccountError: A bad username, short password, unknown role or region, a manager
            without a region, or a taken name.
    """
    wanted = set(region_ids or ())
    _validate(conn, username, password, role, wanted)
    if conn.execute(select(hub_users.c.username).where(hub_users.c.username == username)).first():
        raise AccountError(f"username {username!r} is taken")
    conn.execute(
        hub_users.insert().values(
            username=username,
            password_hash=generate_password_hash(password),
            role=role,
            created_ms=round(time.time() * 1000),
        )
    )
    for region_id in sorted(wanted):
        conn.execute(hub_user_regions.insert().values(username=username, region_id=region_id))
    logger.info("hub account %s created (%s, regions %s)", username, role, sorted(wanted) or "all")
    return User(username, role, frozenset(wanted))  # type: ignore[arg-type]  # validated


def delete_user(conn: Connection, username: str) -> bool:
    """Remove an account and end its sessions; whether it existed."""
    conn.execute(delete(hub_sessions).where(hub_sessions.c.username == username))
    conn.execute(delete(hub_user_regions).where(hub_user_regions.c.username == username))
    gone = conn.execute(delete(hub_users).where(hub_users.c.username == username)).rowcount > 0
    if gone:
        logger.info("hub account %s deleted", username)
    return gone


def get_user(conn: Connection, username: str) -> User | None:
    """The account called ``username``, if any."""
    role = conn.execute(
        select(hub_users.c.role).where(hub_users.c.username == username)
    ).scalar_one_or_none()
    if role is None:
        return None
    own = conn.execute(
        select(hub_user_regions.c.region_id).where(hub_user_regions.c.username == username)
    ).scalars()
    return User(username, role, frozenset(own))


def list_users(conn: Connection) -> list[User]:
    """Every account, by name."""
    names = conn.execute(select(hub_users.c.username).order_by(hub_users.c.username)).scalars()
    return [user for name in list(names) if (user := get_user(conn, name)) is not None]


def has_users(conn: Connection) -> bool:
    """Whether any account exists (a fresh hub has none)."""
    return conn.execute(select(hub_users.c.username).limit(1)).first() is not None


def authenticate(conn: Connection, username: str, password: str) -> User | None:
    """The user if the password is right, else None (one scrypt whether or not the name exists)."""
    stored = conn.execute(
        select(hub_users.c.password_hash).where(hub_users.c.username == username)
    ).scalar_one_or_none()
    if stored is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return get_user(conn, username) if check_password_hash(stored, password) else None


def visible_stores(conn: Connection, user: User) -> list[tuple[str, str, str]]:
    """``(store id, name, region id)`` of every store ``user`` may see, by region and id."""
    query = select(stores.c.id, stores.c.name, stores.c.region_id).order_by(
        stores.c.region_id, stores.c.id
    )
    if not user.sees_all:
        query = query.where(stores.c.region_id.in_(sorted(user.regions)))
    return [(row.id, row.name, row.region_id) for row in conn.execute(query)]


def _setting(conn: Connection, key: str) -> str | None:
    return conn.execute(
        select(hub_settings.c.value).where(hub_settings.c.key == key)
    ).scalar_one_or_none()


def _put_setting(conn: Connection, key: str, value: str) -> None:
    if _setting(conn, key) is None:
        conn.execute(hub_settings.insert().values(key=key, value=value))
    else:
        conn.execute(update(hub_settings).where(hub_settings.c.key == key).values(value=value))


def secret_key(conn: Connection) -> str:
    """The key that signs the dashboard's cookies (made once per hub, kept in the database)."""
    key = _setting(conn, "secret_key")
    if key is None:
        key = secrets.token_hex(32)
        _put_setting(conn, "secret_key", key)
    return key


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def issue_setup_token(conn: Connection) -> str | None:
    """A new one-time token for the first admin while there is no account, else None.

    Only its hash is stored; issuing again replaces the previous token.
    """
    if has_users(conn):
        return None
    token = secrets.token_urlsafe(18)
    _put_setting(conn, "setup_token_hash", _sha256(token))
    return token


def redeem_setup_token(conn: Connection, token: str, username: str, password: str) -> User:
    """Create the first admin with the setup token, which then stops working.

    Raises:
        AccountError: No token is pending, the token is wrong, or the account is invalid.
    """
    stored = _setting(conn, "setup_token_hash")
    if stored is None or has_users(conn):
        raise AccountError("setup is closed: this hub already has an account")
    if not hmac.compare_digest(stored, _sha256(token.strip())):
        raise AccountError("setup token: wrong token")
    user = create_user(conn, username, password, "admin")
    conn.execute(delete(hub_settings).where(hub_settings.c.key == "setup_token_hash"))
    return user


def start_session(conn: Connection, username: str, now_ms: int) -> str:
    """Open a session (sweeping ended ones); the id for the cookie, stored only hashed."""
    conn.execute(
        delete(hub_sessions).where(
            (hub_sessions.c.expires_ms <= now_ms)
            | (hub_sessions.c.last_seen_ms <= now_ms - SESSION_IDLE_MS)
        )
    )
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        hub_sessions.insert().values(
            id_hash=_sha256(session_id),
            username=username,
            created_ms=now_ms,
            last_seen_ms=now_ms,
            expires_ms=now_ms + SESSION_LIFETIME_MS,
        )
    )
    return session_id


def session_user(conn: Connection, session_id: str, now_ms: int) -> User | None:
    """The user of a live session, or None if it has ended (its row is then deleted)."""
    key = _sha256(session_id)
    row = conn.execute(
        select(
            hub_sessions.c.username, hub_sessions.c.last_seen_ms, hub_sessions.c.expires_ms
        ).where(hub_sessions.c.id_hash == key)
    ).first()
    if row is None:
        return None
    if now_ms >= row.expires_ms or now_ms - row.last_seen_ms >= SESSION_IDLE_MS:
        conn.execute(delete(hub_sessions).where(hub_sessions.c.id_hash == key))
        logger.info("hub session of %s ended (lifetime or idle)", row.username)
        return None
    if now_ms - row.last_seen_ms >= TOUCH_EVERY_MS:
        conn.execute(
            update(hub_sessions).where(hub_sessions.c.id_hash == key).values(last_seen_ms=now_ms)
        )
    return get_user(conn, row.username)


def end_session(conn: Connection, session_id: str) -> None:
    """End one session (sign-out)."""
    conn.execute(delete(hub_sessions).where(hub_sessions.c.id_hash == _sha256(session_id)))
