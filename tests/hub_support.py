"""Helpers for the hub's tests: a real PostgreSQL server, real hub processes, signed batches.

:func:`postgres` (session) runs ``initdb`` into a fresh temp folder and a server on a
free 127.0.0.1 port (its socket in that folder), as ``nobody`` when the tests run as
root (PostgreSQL refuses root), and removes it all afterwards. Without PostgreSQL's
binaries the PostgreSQL half of the suite fails, saying what to install (CI installs
Debian's ``postgresql``). :func:`hub_db` is one migrated hub database per module and
back end; :func:`hub` is a ``footfall hub serve`` process on it.
"""

from __future__ import annotations

import gzip
import json
import os
import pwd
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")
PG_SEARCH = (
    "/usr/local/bin",
    *sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin")), reverse=True),
)
PG_USER = "footfall"
START_TIMEOUT_S = 60.0


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in PG_SEARCH:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A PostgreSQL server the tests started; :meth:`new_database` makes a fresh one."""

    root: Path
    port: int
    pg_ctl: str
    run_as: list[str]
    _count: int = 0

    def new_database(self) -> str:
        """CREATE DATABASE hub_<n>; its SQLAlchemy URL."""
        import psycopg

        self._count += 1
        name = f"hub_{self._count}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (immediately) and remove its folder."""
        subprocess.run(
            [*self.run_as, self.pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True, timeout=60, check=False, cwd=self.root,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PgServer:
    """initdb + pg_ctl start on a free port; fails the test with the reason if it cannot."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.fail(
            "PostgreSQL's initdb and pg_ctl are not installed (looked on PATH and in "
            f"{', '.join(PG_SEARCH) or '/usr/lib/postgresql/*/bin'}): apt-get install postgresql"
        )
    root = Path(tempfile.mkdtemp(prefix="footfall-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        run_as = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                  "--clear-groups"]  # fmt: skip
    port = free_port()
    server = PgServer(root, port, pg_ctl, run_as)
    steps = [
        [initdb, "-D", str(root / "data"), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
         "--locale=C", "--no-sync"],
        [pg_ctl, "-D", str(root / "data"), "-l", str(root / "server.log"), "-w", "-t", "60",
         "-o", f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off "
         "-c synchronous_commit=off -c max_connections=50", "start"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(
            [*run_as, *step], capture_output=True, text=True, timeout=120, check=False, cwd=root
        )
        if done.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            server.stop()
            pytest.fail(f"{Path(step[0]).name} failed ({done.returncode}): {done.stderr}{log}")
    return server


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
class HubProcess:
    """A ``footfall hub serve`` process on a free port."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self.process.stdout:
            self.process.stdout.close()


def start_hub(db_url: str, log: Path, env: Mapping[str, str] | None = None) -> HubProcess:
    """Start ``footfall hub serve --port 0`` and wait until it prints its URL."""
    command = [sys.executable, "-m", "appliance.cli", "hub", "serve", "--db", db_url,
               "--port", "0"]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with log.open("w") as err:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, text=True, env=environment, cwd=REPO
        )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.startswith("hub: "):
                return HubProcess(process, line.split(" ", 1)[1].strip(), log)
            if not line:
                break
    process.kill()
    process.wait(timeout=15)
    raise AssertionError(f"the hub did not start ({process.returncode}): {log.read_text()}")


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
