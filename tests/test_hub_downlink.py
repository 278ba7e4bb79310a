"""The hub's downlink seam: every room's items, signed with the store's newest secret."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import Connection

import wire
from cloud_hub.db import migrate, open_engine
from cloud_hub.downlink import Pending, items_for
from wire.answer import MAX_DOWNLINK


def _config(conn: Connection, store_id: str, now_ms: int) -> Iterable[Pending]:
    return [("config_version", f"{store_id}-cfg-7", {"version": 7, "at": now_ms})]


def _many(conn: Connection, store_id: str, now_ms: int) -> Iterable[Pending]:
    return [("config_version", f"c{i}", {"version": i}) for i in range(MAX_DOWNLINK + 5)]


def test_items_are_signed_verifiable_in_order_and_capped(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/hub.db")
    migrate(engine)
    secret, other = wire.generate_secret(), wire.generate_secret()
    with engine.connect() as conn:
        items = items_for(conn, "s1", secret, 1_000, providers=(_config, _many))
    assert len(items) == MAX_DOWNLINK
    assert (items[0].kind, items[0].id, items[0].payload) == (
        "config_version", "s1-cfg-7", {"version": 7, "at": 1_000},
    )  # fmt: skip
    assert [i.id for i in items[1:4]] == ["c0", "c1", "c2"]
    for item in items:
        wire.verify_downlink([other, secret], item)
    with pytest.raises(wire.SignatureError):
        wire.verify_downlink([other], items[0])
    engine.dispose()


def test_no_providers_no_items(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path}/hub.db")
    migrate(engine)
    with engine.connect() as conn:
        assert items_for(conn, "s1", wire.generate_secret(), 1_000, providers=()) == []
    engine.dispose()
