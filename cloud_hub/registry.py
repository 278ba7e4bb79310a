"""The store registry: regions, stores, and each store's signing secrets.

A store has one or more active secrets. :func:`rotate_secret` issues a new one and lets
the old ones expire after a grace period (the box signs with both while it switches), or
at once with ``revoke_old``. Secrets are stored in clear: verifying an HMAC needs the
secret itself, so the database is as sensitive as the secrets it holds.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, Connection, func, or_, select, update

from cloud_hub.schema import applied_batches, regions, store_secrets, stores
from wire import generate_secret

#: Store and region ids: the box config's id pattern.
ID_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DEFAULT_GRACE_MS: Final = 7 * 24 * 3600 * 1000


class RegistryError(ValueError):
    """A store or region that cannot be added or changed (the message says why)."""


@dataclass(frozen=True)
class StoreInfo:
    """One store as ``footfall hub store list`` shows it."""

    id: str
    name: str
    region_id: str
    tz: str
    area_m2: float | None
    active_secrets: int
    batches: int
    last_received_ms: int | None


def check_id(kind: str, value: str) -> str:
    """``value`` if it is a valid id.

    Raises:
        RegistryError: It is not.
    """
    if not ID_PATTERN.fullmatch(value):
        raise RegistryError(f"{kind} id {value!r} must match [a-z0-9][a-z0-9_-]{{0,62}}")
    return value


def add_store(
    conn: Connection,
    store_id: str,
    name: str,
    region_id: str,
    tz: str,
    area_m2: float | None,
    now_ms: int,
    weekly_hours: list[int] | None = None,
) -> str:
    """Register a store (and its region if new) with a first secret.

    ``weekly_hours``: hours open per weekday, Monday first
    (:func:`cloud_hub.compare.parse_opening_hours`); None: not set.

    Returns:
        The store's secret (show it once: the box needs it).

    Raises:
        RegistryError: A bad id, name, time zone or area, or the store exists.
    """
    check_id("store", store_id)
    check_id("region", region_id)
    if not name.strip() or len(name) > 200:
        raise RegistryError("a store's name is 1 to 200 characters")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise RegistryError(f"unknown time zone {tz!r}") from exc
    if area_m2 is not None and not 0 < area_m2 < 1e7:
        raise RegistryError(f"area {area_m2} m² must be positive (and under 10 km²)")
    if conn.execute(select(stores.c.id).where(stores.c.id == store_id)).first():
        raise RegistryError(f"store {store_id!r} exists already")
    if not conn.execute(select(regions.c.id).where(regions.c.id == region_id)).first():
        conn.execute(regions.insert().values(id=region_id, name=region_id))
    conn.execute(
        stores.insert().values(
            id=store_id,
            name=name,
            region_id=region_id,
            tz=tz,
            area_m2=area_m2,
            created_ms=now_ms,
            opening_hours=None if weekly_hours is None else json.dumps(weekly_hours),
        )
    )
    secret = generate_secret()
    conn.execute(store_secrets.insert().values(store_id=store_id, secret=secret, created_ms=now_ms))
    return secret


def _active(now_ms: int) -> ColumnElement[bool]:
    return or_(store_secrets.c.expires_ms.is_(None), store_secrets.c.expires_ms > now_ms)


def active_secrets(conn: Connection, store_id: str, now_ms: int) -> list[str]:
    """The store's secrets valid at ``now_ms``, newest first (empty: unknown store)."""
    rows = conn.execute(
        select(store_secrets.c.secret)
        .where(store_secrets.c.store_id == store_id, _active(now_ms))
        .order_by(store_secrets.c.id.desc())
    )
    return [row.secret for row in rows]


def store_tz(conn: Connection, store_id: str) -> str | None:
    """The store's time zone, or None if there is no such store."""
    return conn.execute(select(stores.c.tz).where(stores.c.id == store_id)).scalar_one_or_none()


def rotate_secret(
    conn: Connection,
    store_id: str,
    now_ms: int,
    grace_ms: int = DEFAULT_GRACE_MS,
    revoke_old: bool = False,
) -> str:
    """Issue a new secret; the old ones stay valid ``grace_ms`` more (none with ``revoke_old``).

    Returns:
        The new secret (show it once).

    Raises:
        RegistryError: No such store, or a negative grace period.
    """
    if store_tz(conn, store_id) is None:
        raise RegistryError(f"no store {store_id!r}")
    if grace_ms < 0:
        raise RegistryError("the grace period cannot be negative")
    until = now_ms if revoke_old else now_ms + grace_ms
    conn.execute(
        update(store_secrets)
        .where(store_secrets.c.store_id == store_id, _active(until))
        .values(expires_ms=until)
    )
    secret = generate_secret()
    conn.execute(store_secrets.insert().values(store_id=store_id, secret=secret, created_ms=now_ms))
    return secret


def list_stores(conn: Connection, now_ms: int) -> list[StoreInfo]:
    """Every store with its count of active secrets and of batches received."""
    secrets_n = (
        select(func.count())
        .where(store_secrets.c.store_id == stores.c.id, _active(now_ms))
        .scalar_subquery()
    )
    batches_n = (
        select(func.count()).where(applied_batches.c.store_id == stores.c.id).scalar_subquery()
    )
    last = (
        select(func.max(applied_batches.c.received_ms))
        .where(applied_batches.c.store_id == stores.c.id)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            stores.c.id, stores.c.name, stores.c.region_id, stores.c.tz, stores.c.area_m2,
            secrets_n, batches_n, last,
        ).order_by(stores.c.region_id, stores.c.id)
    )  # fmt: skip
    return [StoreInfo(*row) for row in rows]
