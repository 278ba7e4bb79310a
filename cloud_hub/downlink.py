"""The downlink: what the hub has for a box, sent in its answer to each signed upload.

Each hub room that has something for a box (a config version, a software update, a
forecast, a staffing suggestion) contributes one provider to :data:`PROVIDERS`: a
function of the connection, the store id and the hub's clock that returns the
``(kind, id, payload)`` items the store should get now. :func:`items_for` signs them with
the store's newest active secret (:func:`wire.sign_downlink`), so the box can verify each
one and drop what it cannot. A provider repeats an item until the box reports that it has
acted on it (the box keys what it received by kind and id), so a lost answer loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Connection

from cloud_hub import rollouts, store_config
from wire import DownlinkItem, sign_downlink
from wire.answer import MAX_DOWNLINK

#: One downlink item before signing: ``(kind, id, payload)``.
Pending = tuple[str, str, dict[str, object]]
#: A hub room's items for a store: ``provider(conn, store_id, now_ms)``.
Provider = Callable[[Connection, str, int], Iterable[Pending]]

#: Every room's provider, asked in this order; one line per room that has items.
PROVIDERS: tuple[Provider, ...] = (store_config.provider, rollouts.provider)


def items_for(
    conn: Connection,
    store_id: str,
    secret: str,
    now_ms: int,
    providers: Iterable[Provider] = PROVIDERS,
) -> list[DownlinkItem]:
    """The signed downlink items for one answer to a store, at most :data:`MAX_DOWNLINK`.

    Args:
        conn: Open connection.
        store_id: The store that signed the upload.
        secret: Its newest active secret (the one the box certainly holds).
        now_ms: The hub's clock.
        providers: The rooms' providers (default: :data:`PROVIDERS`).

    Returns:
        The items, signed, in the providers' order.
    """
    items = [
        sign_downlink(secret, kind, item_id, payload)
        for provider in providers
        for kind, item_id, payload in provider(conn, store_id, now_ms)
    ]
    return items[:MAX_DOWNLINK]
