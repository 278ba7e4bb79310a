"""Helpers for the sync tests: a box database filled with demo-size aggregates, and row dumps.

"Demo-size" is the shop of ``tests/stores.py`` (one door, four zones), per 5-minute
bucket: 1 window, 2 footfall rows (the door in and out), 5 occupancy rows (the store
and each zone), 3 dwell rows, 1 queue row, 4 transitions, 3 funnel steps and 40
heatmap cells: 59 rows a bucket, 16,992 a day.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import requests
from sqlalchemy import Engine, select

import wire
from cloud_hub.schema import FACTS
from local_db import connect, migrate
from local_db.aggregates import WindowRow, replace_buckets
from local_db.outbox import OUTBOX_TABLES
from tests.stores import SHOP

BUCKET_MS = 300_000
HOUR_BUCKETS = 12
ROWS_PER_BUCKET = 59
ZONES = ("display", "queue", "till", "office")


def _bucket_tables(
    store_id: str, buckets: list[int], rng: random.Random
) -> tuple[dict[str, pd.DataFrame], list[WindowRow]]:
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in OUTBOX_TABLES if t != "agg_windows"}
    windows = []
    for b in buckets:
        key = {"store_id": store_id, "bucket_ms": b}
        windows.append(WindowRow(b, b + 360_000, 1.0, "complete", rng.randint(0, 30), 2))
        for direction in ("in", "out"):
            rows["agg_footfall"].append(
                {**key, "line_id": "door", "direction": direction, "count": rng.randint(0, 40)}
            )
        for zone in ("", *ZONES):
            rows["agg_occupancy"].append(
                {**key, "zone_id": zone, "mean": round(rng.uniform(0, 9), 4),
                 "max": rng.randint(0, 12)}
            )  # fmt: skip
        for zone in ZONES[:3]:
            hist = [rng.randint(0, 5) for _ in range(8)]
            rows["agg_dwell"].append(
                {**key, "zone_id": zone, "visits": sum(hist), "total_s": rng.uniform(0, 900),
                 "p10_s": 3.5, "p50_s": rng.uniform(5, 60), "p90_s": None,
                 "hist": json.dumps(hist)}
            )  # fmt: skip
        rows["agg_queue"].append(
            {**key, "zone_id": "queue", "joined": 4, "served": 3, "abandoned": 1,
             "wait_total_s": rng.uniform(0, 300), "mean_wait_s": 41.25, "p90_wait_s": None,
             "mean_len": rng.uniform(0, 3), "max_len": 3, "predicted_mae_s": None}
        )  # fmt: skip
        for a, z in (("", "display"), ("display", "queue"), ("queue", "till"), ("till", "")):
            rows["agg_transitions"].append(
                {**key, "from_zone": a, "to_zone": z, "count": rng.randint(0, 9)}
            )
        for step, kind in enumerate(("in", "display", "checkout")):
            rows["agg_funnel"].append({**key, "step": step, "kind": kind, "people": 9 - step})
        for cell in rng.sample(range(1280), 40):
            rows["agg_heatmap"].append(
                {**key, "cell_x": cell % 40, "cell_y": cell // 40,
                 "person_s": round(rng.uniform(0, 60), 3), "people": rng.randint(1, 6)}
            )  # fmt: skip
    return {t: pd.DataFrame(r) for t, r in rows.items()}, windows


def fill_box(
    conn: sqlite3.Connection, store_id: str, start_ms: int, buckets: int, seed: int = 0
) -> None:
    """Write ``buckets`` demo-size buckets from ``start_ms`` as the engine does: an hour a call."""
    rng = random.Random(seed)
    for first in range(0, buckets, HOUR_BUCKETS):
        span = [start_ms + i * BUCKET_MS for i in range(first, min(first + HOUR_BUCKETS, buckets))]
        tables, windows = _bucket_tables(store_id, span, rng)
        replace_buckets(conn, store_id, span[0], span[-1] + BUCKET_MS, tables, windows)


def new_box(path: Path) -> sqlite3.Connection:
    """A migrated box database."""
    conn = connect(path)
    migrate(conn)
    return conn


def _hist(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def box_rows(db: Path, store_id: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every aggregate row of a store with its bucket's revision, as sorted-column tuples."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    with closing(connect(db, readonly=True)) as conn:
        for table in OUTBOX_TABLES:
            cursor = conn.execute(
                f"SELECT r.rev AS rev, t.* FROM {table} t JOIN bucket_revisions r "
                "ON r.table_name = ? AND r.store_id = t.store_id AND r.bucket_ms = t.bucket_ms "
                "WHERE t.store_id = ?",
                (table, store_id),
            )
            names = [d[0] for d in cursor.description]
            out[table] = {_row(dict(zip(names, row, strict=True))) for row in cursor}
    return out


def _row(row: dict[str, Any]) -> tuple[Any, ...]:
    row = {k: v for k, v in row.items() if k not in ("store_id", "received_ms")}
    if "hist" in row:
        row["hist"] = tuple(_hist(row["hist"]))  # type: ignore[arg-type]
    return tuple(sorted(row.items()))


def hub_rows(engine: Engine, store_id: str) -> dict[str, set[tuple[Any, ...]]]:
    """The hub's 5-minute facts of a store in the same form as :func:`box_rows`."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in OUTBOX_TABLES:
            facts = FACTS[table]
            result = conn.execute(select(facts).where(facts.c.store_id == store_id))
            out[table] = {_row(dict(row._mapping)) for row in result}
    return out


def hub_count(engine: Engine, store_id: str) -> int:
    """All the 5-minute facts the hub holds for a store."""
    return sum(len(rows) for rows in hub_rows(engine, store_id).values())


class HubProxy:
    """A real HTTP server in front of a hub: records each batch body, forwards it, and may
    add downlink items to the hub's answer or hold the answer back (a box killed meanwhile)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.bodies: list[bytes] = []
        self.downlink: list[wire.DownlinkItem] = []
        self.hold_answers = False
        self.held = threading.Event()  # an answer of the hub was held back
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.bodies.append(body)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower().startswith(("webhook-", "footfall-", "content-"))
                }
                upstream = requests.post(proxy.upstream + self.path, data=body,
                                         headers=headers, timeout=60)  # fmt: skip
                answer = upstream.content
                if upstream.status_code == 200 and proxy.downlink:
                    ack, _ = wire.decode_answer(answer)
                    answer = wire.encode_answer(ack, proxy.downlink)
                if proxy.hold_answers:
                    proxy.held.set()
                    proxy.release.wait(120)
                    return  # the connection closes unanswered
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Stop serving (held answers are released unanswered)."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def box_config(
    tmp_path: Path, url: str, hub_store: str, name: str = "store.yaml", env: str = "HUB_SECRET"
) -> Path:
    """The test shop's config with a ``hub`` section (the secret in ``$env``)."""
    path = tmp_path / name
    path.write_text(
        SHOP + f"storage: {{db_path: {tmp_path / 'box.db'}}}\n"
        f"hub: {{url: '{url}', store_id: {hub_store}, secret_env: {env}}}\n"
    )
    return path
