"""The boxes' heartbeats on the hub: each store's newest one, a bounded history, the statuses.

A heartbeat (:mod:`wire.heartbeat`) arrives signed and replay-checked as a batch is
(:mod:`cloud_hub.app`); :func:`store_heartbeat` keeps it as the store's newest (the whole
document) and appends its status to ``heartbeat_history``, which keeps the last
:data:`HISTORY_PER_STORE` per store. :func:`fleet` tells each visible store's status:

* ``never seen``: no heartbeat yet;
* ``offline``: none for more than the offline threshold (default :data:`OFFLINE_AFTER_MIN`);
* ``degraded``: the box says so (its health's reasons), or it rejected a config version;
* ``ok``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, delete, select

from cloud_hub.schema import box_heartbeats, heartbeat_history, stores
from wire.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

#: A box without a heartbeat for longer than this is offline (``--offline-after-min``).
OFFLINE_AFTER_MIN: Final = 15
#: Heartbeats kept per store in ``heartbeat_history``.
HISTORY_PER_STORE: Final = 500
#: Fleet statuses, worst last.
STATUSES: Final = ("ok", "degraded", "offline", "never seen")


class HeartbeatError(ValueError):
    """A heartbeat the hub refuses (``status``: the HTTP code) with the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def store_heartbeat(conn: Connection, store_id: str, beat: Heartbeat, now_ms: int) -> None:
    """Keep a checked heartbeat as the store's newest, and in its bounded history.

    Args:
        conn: A connection in a transaction.
        store_id: The signing store.
        beat: The checked heartbeat (:func:`wire.heartbeat.decode_heartbeat`).
        now_ms: The hub's clock.

    Raises:
        HeartbeatError: The heartbeat is for another store (403).
    """
    if beat["store_id"] != store_id:
        raise HeartbeatError(
            403, f"the heartbeat is for store {beat['store_id']!r} but signed by {store_id!r}"
        )
    values = {
        "received_ms": now_ms,
        "sent_ms": beat["sent_ms"],
        "status": beat["status"],
        "software": beat["software"],
        "config_version": beat["config"]["version"],
        "body": json.dumps(beat, separators=(",", ":")),
    }
    updated = conn.execute(
        box_heartbeats.update().where(box_heartbeats.c.store_id == store_id).values(**values)
    ).rowcount
    if not updated:
        conn.execute(box_heartbeats.insert().values(store_id=store_id, **values))
    conn.execute(
        heartbeat_history.insert().values(
            store_id=store_id,
            received_ms=now_ms,
            status=beat["status"],
            reasons=json.dumps(beat["reasons"]),
        )
    )
    keep_from = conn.execute(
        select(heartbeat_history.c.id)
        .where(heartbeat_history.c.store_id == store_id)
        .order_by(heartbeat_history.c.id.desc())
        .offset(HISTORY_PER_STORE - 1)
        .limit(1)
    ).scalar()
    if keep_from is not None:
        conn.execute(
            delete(heartbeat_history).where(
                heartbeat_history.c.store_id == store_id, heartbeat_history.c.id < keep_from
            )
        )


def latest(conn: Connection, store_id: str) -> tuple[int, Heartbeat] | None:
    """``(received_ms, heartbeat)`` of the store's newest heartbeat, or None."""
    row = conn.execute(
        select(box_heartbeats.c.received_ms, box_heartbeats.c.body).where(
            box_heartbeats.c.store_id == store_id
        )
    ).first()
    return None if row is None else (int(row.received_ms), json.loads(row.body))


def recent_statuses(conn: Connection, store_id: str, since_ms: int) -> list[str]:
    """The statuses of the store's heartbeats received after ``since_ms``, newest first."""
    return [
        str(s)
        for (s,) in conn.execute(
            select(heartbeat_history.c.status)
            .where(
                heartbeat_history.c.store_id == store_id,
                heartbeat_history.c.received_ms > since_ms,
            )
            .order_by(heartbeat_history.c.id.desc())
            .limit(HISTORY_PER_STORE)
        )
    ]


@dataclass(frozen=True)
class BoxStatus:
    """One store's box as the fleet page and the ops alerts see it."""

    store_id: str
    name: str
    region_id: str
    status: str
    reason: str = ""
    last_seen_ms: int | None = None
    software: str = ""
    config_version: int | None = None
    beat: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _reason(beat: Heartbeat) -> str:
    reasons = list(beat["reasons"])
    rejected = beat["config"].get("rejected")
    if rejected:
        reasons.append(f"config version {rejected['version']} rejected: {rejected['error']}")
    return "; ".join(reasons)


def status_of(
    store: tuple[str, str, str], found: tuple[int, Heartbeat] | None, now_ms: int,
    offline_after_ms: int,
) -> BoxStatus:  # fmt: skip
    """A store's status from its newest heartbeat (see the module's docstring)."""
    store_id, name, region_id = store
    if found is None:
        return BoxStatus(store_id, name, region_id, "never seen", "no heartbeat received")
    received_ms, beat = found
    common: dict[str, Any] = {
        "last_seen_ms": received_ms,
        "software": beat["software"],
        "config_version": beat["config"]["version"],
        "beat": beat,
    }
    silent_ms = now_ms - received_ms
    if silent_ms > offline_after_ms:
        reason = f"no heartbeat for {silent_ms // 60_000} min"
        return BoxStatus(store_id, name, region_id, "offline", reason, **common)
    reason = _reason(beat)
    status = "degraded" if beat["status"] == "degraded" or reason else "ok"
    return BoxStatus(store_id, name, region_id, status, reason, **common)


def fleet(
    conn: Connection, visible: Sequence[tuple[str, str, str]], now_ms: int, offline_after_ms: int
) -> list[BoxStatus]:
    """The status of each ``(store id, name, region id)`` in ``visible``, in that order.

    Args:
        conn: Open connection.
        visible: The stores to show (scoped by the caller).
        now_ms: The hub's clock.
        offline_after_ms: No heartbeat for longer than this is offline.
    """
    ids = [s[0] for s in visible]
    newest = {
        row.store_id: (int(row.received_ms), json.loads(row.body))
        for row in conn.execute(
            select(box_heartbeats.c.store_id, box_heartbeats.c.received_ms, box_heartbeats.c.body)
            .where(box_heartbeats.c.store_id.in_(ids))
        )
    }  # fmt: skip
    return [status_of(s, newest.get(s[0]), now_ms, offline_after_ms) for s in visible]


def all_stores(conn: Connection) -> list[tuple[str, str, str]]:
    """Every store as ``(id, name, region id)``, by region and id (the ops job sees all)."""
    query = select(stores.c.id, stores.c.name, stores.c.region_id)
    return [
        (r.id, r.name, r.region_id)
        for r in conn.execute(query.order_by(stores.c.region_id, stores.c.id))
    ]
