"""Helpers for the hub's tests: a real PostgreSQL server, real hub processes, signed batches.

:func:`postgres` (session) is one server from :func:`lab.pgserver.start_postgres`
(``initdb`` into a fresh temp folder, a free 127.0.0.1 port, as ``nobody`` when the
tests run as root), removed afterwards; ``footfall bench hub`` starts its own the same
way. Without PostgreSQL's binaries the PostgreSQL half of the suite fails, saying what
to install (CI installs Debian's ``postgresql``). :func:`hub_db` is one migrated hub
database per module and back end; :func:`hub` is a ``footfall hub serve`` process on it.
"""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select

import wire
from cloud_hub.db import migrate, open_engine
from cloud_hub.registry import add_store
from cloud_hub.schema import (
    DAILY,
    FACTS,
    HOURLY,
    applied_batches,
    ledger_hours,
    seen_deliveries,
)
from lab import pgserver
from lab.pgserver import REPO, HubProcess, PgServer, PgServerError, free_port, start_hub

__all__ = ["REPO", "HubProcess", "PgServer", "free_port", "start_hub"]

BACKENDS = ("sqlite", "postgresql")


def start_postgres() -> PgServer:
    """:func:`lab.pgserver.start_postgres`; fails the test with the reason if it cannot."""
    try:
        return pgserver.start_postgres()
    except PgServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole session."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def hub_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated hub database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('hub')}/hub.db"
    else:
        url = request.getfixturevalue("postgres").new_database()
    engine = open_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@dataclass
class Hub:
    """A hub process with its database, and what tests do with it."""

    process: HubProcess
    db_url: str
    engine: Engine
    secrets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.process.url

    def new_store(self, tz: str = "Europe/Berlin", region: str = "north") -> str:
        """Register a fresh store (a unique id); its id."""
        store_id = f"s-{uuid.uuid4().hex[:12]}"
        with self.engine.begin() as conn:
            self.secrets[store_id] = [
                add_store(conn, store_id, store_id, region, tz, 300.0, int(time.time() * 1000))
            ]
        return store_id

    def post(
        self,
        body: bytes,
        headers: Mapping[str, str],
    ) -> requests.Response:
        """POST a body with these headers to the batch endpoint."""
        return requests.post(
            self.url + wire.BATCH_PATH, data=body, headers=dict(headers), timeout=60
        )

    def send(self, batch: wire.Batch, timestamp: int | None = None) -> requests.Response:
        """Encode, sign (with the store's secrets, now) and POST a batch."""
        body = wire.encode_batch(batch)
        return self.post(body, self.sign(batch.store_id, batch.batch_id, body, timestamp))

    def sign(
        self, store_id: str, batch_id: str, body: bytes, timestamp: int | None = None
    ) -> dict[str, str]:
        """The signed headers of a body."""
        when = int(time.time()) if timestamp is None else timestamp
        return wire.sign_headers(self.secrets[store_id], batch_id, store_id, body, when)

    def counts(self, store_id: str) -> dict[str, int]:
        """Rows the hub holds for a store, per table (facts, rollups, ledger, batches)."""
        tables = [*FACTS.values(), *HOURLY.values(), *DAILY.values(), ledger_hours,
                  applied_batches, seen_deliveries]  # fmt: skip
        with self.engine.connect() as conn:
            return {
                t.name: conn.execute(
                    sql_select(func.count()).select_from(t).where(t.c.store_id == store_id)
                ).scalar_one()
                for t in tables
            }


@pytest.fixture(scope="module")
def hub(hub_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A real hub server process on each back end, for a module's tests."""
    process = start_hub(hub_db, tmp_path_factory.mktemp("hub-log") / "hub.log")
    engine = open_engine(hub_db)
    try:
        yield Hub(process, hub_db, engine)
    finally:
        process.stop()
        engine.dispose()


def gzip_json(document: object) -> bytes:
    """A document as a gzip body, without the encoder's checks (for hostile bodies)."""
    return gzip.compress(json.dumps(document).encode())


DAY_MS = 24 * 3_600_000


def footfall_rows(start_ms: int, buckets: int, rev: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """``agg_footfall`` rows: two lines in and out for each bucket."""
    rng = random.Random(seed)
    return [
        {"bucket_ms": start_ms + i * wire.BUCKET_MS, "line_id": line, "direction": d,
         "count": rng.randint(0, 40), "rev": rev}
        for i in range(buckets) for line in ("door", "side") for d in ("in", "out")
    ]  # fmt: skip


def window_rows(start_ms: int, buckets: int, rev: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """``agg_windows`` rows, mostly complete."""
    rng = random.Random(seed)
    rows = []
    for i in range(buckets):
        coverage = rng.choice((1.0, 1.0, 1.0, 0.5, 0.0))
        status = "complete" if coverage == 1.0 else ("missing" if coverage == 0.0 else "partial")
        rows.append({"bucket_ms": start_ms + i * wire.BUCKET_MS, "computed_at_ms": start_ms,
                     "coverage": coverage, "status": status, "customers": rng.randint(0, 30),
                     "staff": 2, "rev": rev})  # fmt: skip
    return rows


def occupancy_rows(
    start_ms: int, buckets: int, rev: int = 1, seed: int = 0
) -> list[dict[str, Any]]:
    """``agg_occupancy`` rows for the whole store and one zone."""
    rng = random.Random(seed)
    return [
        {"bucket_ms": start_ms + i * wire.BUCKET_MS, "zone_id": zone,
         "mean": round(rng.uniform(0, 20), 3), "max": rng.randint(0, 25), "rev": rev}
        for i in range(buckets) for zone in ("", "till")
    ]  # fmt: skip


def batch_of(store_id: str, **tables: list[dict[str, Any]]) -> wire.Batch:
    """A batch with a fresh id."""
    return wire.Batch(store_id, wire.new_batch_id(), int(time.time() * 1000), dict(tables))
