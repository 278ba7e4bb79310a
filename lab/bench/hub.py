"""``footfall bench hub``: the hub's ingest rate against a raw ``COPY``, and its pages' server time.

(a) **Ingest.** ``stores`` stores send ``days`` days of 5-minute buckets
(:data:`ROWS_PER_BUCKET` rows a bucket: the windows, two doors in and out, the store's
and two zones' occupancy, two zones' dwell, a queue, a three-step funnel) through the
real path: a ``footfall hub serve`` process on a free port, each store's rows cut into
batches the way a box catching up does (whole buckets, oldest first, at most
:data:`sync.batches.ROW_BUDGET` rows, its rows through :func:`sync.batches.wire_row`),
encoded with :func:`wire.encode_batch` and signed at send time with
:func:`wire.sign_headers`, ``workers`` stores sending at once (each store is one box and
sends one batch at a time). Rows per second on SQLite and on PostgreSQL; then, on the
same PostgreSQL, the 5-minute tables are emptied and the same rows ``COPY``-ed straight
in, and ours is reported as a fraction of that.

(b) **Pages.** Before the ingested days, ``history_days`` days of every store are loaded
in bulk (``COPY`` on PostgreSQL, one ``executemany`` transaction on SQLite) into what
the pages read: the daily rollups of those tables, ``ledger_hours`` (per local hour,
mostly complete, with partial, missing and not-received hours and outage days) and
``ledger_days`` made from them by :func:`cloud_hub.ledger.day_row` (what ingest runs),
POS hours 09-21, ``day_totals`` made from those by :func:`cloud_hub.day_totals.refresh`
(what ingest and the POS import run), and one applied batch per store-day (a catching-up
box's shape). The year's hourly rollups and 5-minute rows are not loaded: no page reads them (a test
asserts it); the ingested days have theirs. Each page, CSV and the JSON API is then
requested through Flask's test client as an admin (every store) and as a regional
manager (one region of :data:`STORES_PER_REGION`), with the default period (the 7
days up to yesterday, compared with the week before and the same week last year);
mean and max wall milliseconds of ``repeat`` requests after a warm-up one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import tempfile
import time
import zoneinfo
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import requests
from sqlalchemy import Engine, Table, func, select, text

import wire
from cloud_hub import day_totals
from cloud_hub.accounts import create_user
from cloud_hub.db import migrate, open_engine
from cloud_hub.ledger import LedgerHour, day_bounds, day_row
from cloud_hub.registry import add_store
from cloud_hub.schema import (
    DAILY,
    FACTS,
    applied_batches,
    ledger_days,
    ledger_hours,
    pos_hours,
)
from lab.pgserver import PgServer, start_hub, start_postgres
from sync.batches import ROW_BUDGET, wire_row

logger = logging.getLogger(__name__)

ROWS_PER_BUCKET: Final = 14
STORES_PER_REGION: Final = 50
ZONES: Final = ("Europe/Berlin", "Europe/London", "Europe/Madrid", "Europe/Warsaw")
PASSWORD: Final = "bench only 7301 hub"
PAGE_GOAL_MS: Final = 200.0
COPY_RATIO_GOAL: Final = 0.3
BACKENDS: Final = ("postgresql", "sqlite")
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS

#: The pages timed: (name, URL; ``{store}`` and ``{region}`` are the manager's), admin only.
PAGES: Final = (
    ("league", "/", False),
    ("league fragment", "/?hx=1", False),
    ("league CSV", "/league.csv", False),
    ("regions CSV", "/regions.csv", False),
    ("league API", "/api/v1/league", False),
    ("store", "/stores/{store}", False),
    ("store CSV", "/stores/{store}.csv", False),
    ("region", "/regions/{region}", False),
    ("region CSV", "/regions/{region}.csv", False),
    ("ledger", "/ledger", False),
    ("ledger CSV", "/ledger.csv", False),
    ("users", "/users", True),
)


@dataclass(frozen=True)
class Store:
    """A benchmark store."""

    id: str
    region: str
    tz: str


def _stores(count: int) -> list[Store]:
    return [
        Store(f"store-{i:04d}", f"region-{i // STORES_PER_REGION:02d}", ZONES[i % len(ZONES)])
        for i in range(count)
    ]


def bucket_rows(bucket_ms: int, rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    """One bucket of a store as its box's tables hold it (:data:`ROWS_PER_BUCKET` rows)."""
    visits = [rng.randint(0, 6) for _ in range(2)]
    served = rng.randint(0, 4)
    people = rng.randint(0, 12)
    return {
        "agg_windows": [{"bucket_ms": bucket_ms, "computed_at_ms": bucket_ms + 60_000,
                         "coverage": 1.0, "status": "complete",
                         "customers": rng.randint(0, 30), "staff": 2, "rev": 1}],
        "agg_footfall": [{"bucket_ms": bucket_ms, "line_id": line, "direction": d,
                          "count": rng.randint(0, 9), "rev": 1}
                         for line in ("door", "side") for d in ("in", "out")],
        "agg_occupancy": [{"bucket_ms": bucket_ms, "zone_id": zone,
                           "mean": round(rng.uniform(0, 20), 3), "max": rng.randint(0, 25),
                           "rev": 1} for zone in ("", "shelf", "till")],
        "agg_dwell": [{"bucket_ms": bucket_ms, "zone_id": zone, "visits": v,
                       "total_s": round(v * rng.uniform(30, 600), 3), "p10_s": None,
                       "p50_s": None, "p90_s": None, "hist": json.dumps([v, 0, 0]), "rev": 1}
                      for zone, v in zip(("shelf", "till"), visits, strict=True)],
        "agg_queue": [{"bucket_ms": bucket_ms, "zone_id": "till", "joined": served,
                       "served": served, "abandoned": 0,
                       "wait_total_s": round(served * rng.uniform(10, 200), 3),
                       "mean_wait_s": None, "p90_wait_s": None, "mean_len": 1.0, "max_len": 2,
                       "predicted_mae_s": None, "rev": 1}],
        "agg_funnel": [{"bucket_ms": bucket_ms, "step": step, "kind": kind,
                        "people": people >> step, "rev": 1}
                       for step, kind in enumerate(("in", "browse", "till"))],
    }  # fmt: skip


def store_batches(store: Store, first_ms: int, buckets: int, seed: int) -> list[wire.Batch]:
    """A store's buckets as a box sends them after a while offline.

    Whole buckets, oldest first, at most :data:`sync.batches.ROW_BUDGET` rows a batch.
    """
    rng = random.Random(seed)
    batches: list[wire.Batch] = []
    tables: dict[str, list[wire.Row]] = {}
    total = 0
    for k in range(buckets):
        rows = bucket_rows(first_ms + k * wire.BUCKET_MS, rng)
        if total and total + ROWS_PER_BUCKET > ROW_BUDGET:
            batches.append(wire.Batch(store.id, wire.new_batch_id(), first_ms, tables))
            tables, total = {}, 0
        for table, table_rows in rows.items():
            tables.setdefault(table, []).extend(wire_row(table, r) for r in table_rows)
        total += ROWS_PER_BUCKET
    if total:
        batches.append(wire.Batch(store.id, wire.new_batch_id(), first_ms, tables))
    return batches


def _register(engine: Engine, stores: Sequence[Store], now_ms: int) -> dict[str, str]:
    secrets = {}
    with engine.begin() as conn:
        for s in stores:
            secrets[s.id] = add_store(conn, s.id, f"Shop {s.id}", s.region, s.tz, 250.0, now_ms,
                                      [12, 12, 12, 12, 12, 12, 0])  # fmt: skip
        create_user(conn, "bench-admin", PASSWORD, "admin")
        create_user(conn, "bench-manager", PASSWORD, "manager", {stores[0].region})
    return secrets


def _fact_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return sum(
            conn.execute(select(func.count()).select_from(t)).scalar_one() for t in FACTS.values()
        )


Bodies = dict[str, list[tuple[str, bytes, int]]]  # per store: (batch id, body, rows)


def ingest(
    engine: Engine,
    url: str,
    folder: Path,
    stores: Sequence[Store],
    bodies: Bodies,
    secrets: dict[str, str],
    workers: int,
) -> dict[str, Any]:
    """Send every store's batches to a real hub process; rows/s and what arrived."""
    hub = start_hub(url, folder / f"hub-{engine.dialect.name}.log")

    def send(store: Store) -> int:
        session = requests.Session()  # each box its own connection
        sent = 0
        for batch_id, body, rows in bodies[store.id]:  # one box sends one batch at a time
            headers = wire.sign_headers([secrets[store.id]], batch_id, store.id, body,
                                        int(time.time()))  # fmt: skip
            answer = session.post(hub.url + wire.BATCH_PATH, data=body, headers=headers,
                                  timeout=120)  # fmt: skip
            if answer.status_code != 200:
                raise RuntimeError(f"{store.id}: HTTP {answer.status_code}: {answer.text[:300]}")
            sent += rows
        return sent

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            rows = sum(pool.map(send, stores))
        seconds = time.perf_counter() - start
    finally:
        hub.stop()
    stored = _fact_rows(engine)
    batches = sum(len(b) for b in bodies.values())
    return {
        "rows": rows, "batches": batches, "stored_rows": stored, "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds), "ms_per_batch": round(seconds * 1000 / batches, 1),
    }  # fmt: skip


def copy_facts(engine: Engine, batches: Sequence[wire.Batch], now_ms: int) -> dict[str, Any]:
    """Empty the 5-minute tables, then ``COPY`` the same rows straight in (PostgreSQL)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(t.name for t in FACTS.values())}")
    rows = 0
    start = time.perf_counter()
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for name, facts in FACTS.items():
            columns = [c.name for c in facts.columns]
            with cursor.copy(f'COPY "{facts.name}" ({", ".join(columns)}) FROM STDIN') as copy:
                for batch in batches:
                    for row in batch.tables.get(name, []):
                        full = {**row, "store_id": batch.store_id, "received_ms": now_ms}
                        if "hist" in full:
                            full["hist"] = json.dumps(full["hist"])
                        copy.write_row([full[c] for c in columns])
                        rows += 1
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


def history(
    stores: Sequence[Store], first_day: date, days: int, seed: int = 7
) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """Per store, its ``days`` days from ``first_day`` as rows of the tables the pages read.

    Yields:
        Rows per table name, in each table's column order.
    """
    rng = random.Random(seed)
    for s in stores:
        tz = zoneinfo.ZoneInfo(s.tz)
        out: dict[str, list[tuple[Any, ...]]] = {}
        for k in range(days):
            day = first_day + timedelta(days=k)
            start, end = day_bounds(day, tz)
            text_day = day.isoformat()
            roll = rng.random()
            hours: list[LedgerHour] = []
            for i, hour in enumerate(range(start, end, HOUR_MS)):
                if roll < 0.01 and 8 <= i < 15:
                    continue  # an outage: these hours never arrived
                complete, missing = 12, 0
                if roll > 0.99 and i == 10:
                    complete = 7  # a partial hour
                elif 0.98 < roll <= 0.99 and i < 6:
                    complete, missing = 0, 12  # cameras off at night
                arrived = end + rng.randint(60_000, 3_600_000)
                hours.append(LedgerHour(hour, 12, complete, missing, arrived, arrived))
                out.setdefault("ledger_hours", []).append(
                    (s.id, hour, 12, complete, 12 - complete - missing, missing, arrived, arrived)
                )
            summary = day_row(s.id, day, start, end, hours)
            if summary is not None:
                out.setdefault("ledger_days", []).append(tuple(summary.values()))
            n = len(hours) * 12  # 5-minute windows the day's rollups summarise
            pick, real = rng.randint, rng.uniform
            daily: dict[str, list[tuple[Any, ...]]] = {
                "agg_windows": [((), (float(n), pick(2000, 6000), 2 * n))],
                "agg_footfall": [((line, d), (pick(200, 900),))
                                 for line in ("door", "side") for d in ("in", "out")],
                "agg_occupancy": [((z,), (real(500, 3000), pick(5, 40)))
                                  for z in ("", "shelf", "till")],
                "agg_dwell": [((z,), (pick(100, 600), real(1e4, 1e5))) for z in ("shelf", "till")],
                "agg_queue": [(("till",), (80, 75, 5, real(3000, 9000), 150.0, 6))],
                "agg_funnel": [((step,), (pick(100, 900), "till")) for step in (0, 1, 2)],
            }  # fmt: skip
            for table, rows in daily.items():
                out.setdefault(DAILY[table].name, []).extend(
                    (s.id, text_day, *dims, n, *values) for dims, values in rows
                )
            local = datetime(day.year, day.month, day.day, tzinfo=tz)
            out.setdefault("pos_hours", []).extend(
                (s.id, round((local + timedelta(hours=h)).timestamp() * 1000), text_day,
                 pick(5, 40), round(real(50, 900), 2), end)
                for h in range(9, 21)
            )  # fmt: skip
            rows_sent = 288 * ROWS_PER_BUCKET
            out.setdefault("applied_batches", []).append(
                (s.id, wire.new_batch_id(), end + 600_000, rows_sent, rows_sent)
            )
        yield out


def _tables() -> dict[str, Table]:
    return {t.name: t for t in (*DAILY.values(), ledger_hours, ledger_days, pos_hours,
                                applied_batches)}  # fmt: skip


def load_history(
    engine: Engine, rows: Iterator[dict[str, list[tuple[Any, ...]]]]
) -> dict[str, Any]:
    """Bulk-load :func:`history` rows: ``COPY`` on PostgreSQL, ``executemany`` on SQLite."""
    tables = _tables()
    counts: dict[str, int] = {}
    start = time.perf_counter()
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        cursor = raw.cursor()  # type: ignore[union-attr]
        for chunk in rows:
            for name, table_rows in chunk.items():
                columns = [c.name for c in tables[name].columns]
                if engine.dialect.name == "postgresql":
                    with cursor.copy(f'COPY "{name}" ({", ".join(columns)}) FROM STDIN') as copy:
                        for row in table_rows:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" * len(columns))
                    cursor.executemany(
                        f'INSERT INTO "{name}" ({", ".join(columns)}) VALUES ({marks})', table_rows
                    )
                counts[name] = counts.get(name, 0) + len(table_rows)
    with engine.begin() as conn:
        day_totals.refresh(conn)  # what ingest and the POS import keep, for the loaded days
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    return {"rows": counts, "seconds": round(time.perf_counter() - start, 1)}


def _signed_in(app: Any, username: str) -> Any:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"username": username, "password": PASSWORD,
                                         "csrf_token": token})  # fmt: skip
    if answer.status_code != 302:
        raise RuntimeError(f"signing in {username}: HTTP {answer.status_code}")
    return client


def time_pages(engine: Engine, stores: Sequence[Store], repeat: int) -> list[dict[str, Any]]:
    """Mean and max server ms of every page as admin and as the first region's manager."""
    from cloud_hub.app import create_app

    app = create_app(engine)
    results = []
    for role, username in (("admin", "bench-admin"), ("manager", "bench-manager")):
        client = _signed_in(app, username)
        for name, pattern, admin_only in PAGES:
            if admin_only and role != "admin":
                continue
            url = pattern.format(store=stores[0].id, region=stores[0].region)
            headers = {"HX-Request": "true"} if "hx=1" in url else {}
            times, size = [], 0
            for attempt in range(repeat + 1):  # the first warms the templates
                started = time.perf_counter()
                answer = client.get(url, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise RuntimeError(f"{role} {url}: HTTP {answer.status_code}")
                size = len(answer.data)
                if attempt:
                    times.append(elapsed)
            results.append({
                "page": name, "url": url, "role": role, "mean_ms": round(statistics.mean(times), 1),
                "max_ms": round(max(times), 1), "kb": round(size / 1024, 1),
            })  # fmt: skip
    return results


def _engine_for(backend: str, folder: Path, server: PgServer | None) -> tuple[str, Engine]:
    if backend == "sqlite":
        url = f"sqlite:///{folder}/hub.db"
    else:
        assert server is not None
        url = server.new_database()
    engine = open_engine(url)
    migrate(engine)
    return url, engine


def bench_hub(
    stores: int = 500,
    days: int = 1,
    history_days: int = 365,
    workers: int = 4,
    repeat: int = 3,
    backends: Sequence[str] = BACKENDS,
) -> dict[str, Any]:
    """Run (a) and (b) on each back end; a JSON-ready summary.

    Args:
        stores: Stores (each a box).
        days: Days of 5-minute buckets each store sends, ending yesterday (UTC).
        history_days: Days loaded before those for the pages.
        workers: Stores sending at once.
        repeat: Timed requests per page (after a warm-up one).
        backends: ``postgresql`` and/or ``sqlite``.
    """
    now_ms = int(time.time() * 1000)
    today = datetime.fromtimestamp(now_ms / 1000, UTC).date()
    first_ms = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() * 1000)
    first_ms -= days * DAY_MS
    fleet = _stores(stores)
    buckets = days * DAY_MS // wire.BUCKET_MS
    batches = {s.id: store_batches(s, first_ms, buckets, seed=i) for i, s in enumerate(fleet)}
    bodies = {sid: [(b.batch_id, wire.encode_batch(b), b.row_count) for b in bs]
              for sid, bs in batches.items()}  # fmt: skip
    # the loaded history ends the day before the first ingested one in every store's zone
    first_history = today - timedelta(days=days + history_days)
    result: dict[str, Any] = {
        "stores": stores, "days": days, "history_days": history_days,
        "rows_per_bucket": ROWS_PER_BUCKET, "row_budget": ROW_BUDGET, "workers": workers,
        "repeat": repeat,
        "history": (
            f"{history_days} days before the ingested ones, bulk-loaded (COPY on PostgreSQL, "
            "executemany on SQLite): the daily rollups, ledger_hours, ledger_days made by "
            "cloud_hub.ledger.day_row (what ingest runs), POS hours, day_totals made by "
            "cloud_hub.day_totals.refresh (what ingest runs), one applied batch per "
            "store-day; not the year's hourly rollups or 5-minute rows (no page reads them)"
        ),
        "ingest": {}, "pages": {},
    }  # fmt: skip
    server = start_postgres(max_connections=60) if "postgresql" in backends else None
    try:
        with tempfile.TemporaryDirectory(prefix="footfall-bench-hub-") as tmp:
            folder = Path(tmp)
            for backend in backends:
                url, engine = _engine_for(backend, folder, server)
                try:
                    secrets = _register(engine, fleet, now_ms)
                    logger.info("bench hub: %s: ingesting", backend)
                    got = ingest(engine, url, folder, fleet, bodies, secrets, workers)
                    if backend == "postgresql":
                        copied = copy_facts(
                            engine, [b for bs in batches.values() for b in bs], now_ms
                        )
                        got["copy"] = copied
                        got["ratio_vs_copy"] = round(got["rows_per_s"] / copied["rows_per_s"], 3)
                    result["ingest"][backend] = got
                    logger.info("bench hub: %s: loading %d days", backend, history_days)
                    load = load_history(engine, history(fleet, first_history, history_days))
                    pages = time_pages(engine, fleet, repeat)
                    result["pages"][backend] = {
                        "load": load, "pages": pages,
                        "worst_ms": max(p["max_ms"] for p in pages),
                        "mean_of_means_ms": round(statistics.mean(p["mean_ms"] for p in pages), 1),
                    }  # fmt: skip
                    if backend == "postgresql":
                        with engine.connect() as conn:
                            size = conn.execute(text("SELECT pg_database_size(current_database())"))
                            result["pages"][backend]["db_mb"] = round(size.scalar_one() / 2**20)
                    else:
                        db = folder / "hub.db"
                        result["pages"][backend]["db_mb"] = round(db.stat().st_size / 2**20)
                finally:
                    engine.dispose()
    finally:
        if server is not None:
            server.stop()
    result.update(
        goals={"ratio_vs_copy": COPY_RATIO_GOAL, "page_ms": PAGE_GOAL_MS},
        load_1min=round(os.getloadavg()[0], 1), cores=os.cpu_count(),
    )  # fmt: skip
    return result
