"""Helpers for the hub dashboard's tests: accounts, a signed-in session, a day of rows.

A day's rows are built store-local (the test's own ``zoneinfo`` arithmetic, not the
hub's): every 5-minute bucket of the day, visitors crossing two lines, dwell and queue
in one zone, and the windows' statuses as asked. The tests sum these rows themselves to
check the dashboard's numbers.
"""

from __future__ import annotations

import csv
import io
import random
import re
import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import requests

import wire
from cloud_hub.accounts import create_user
from cloud_hub.registry import add_store
from tests.hub_support import Hub

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BUCKETS_PER_HOUR = 12


def local_day_buckets(day: date, tz: str) -> list[int]:
    """Every 5-minute bucket (UTC ms) of a store-local day."""
    zone = zoneinfo.ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    first, last = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    return list(range(first, last, wire.BUCKET_MS))


@dataclass
class DayRows:
    """The rows of one store-day, by wire table."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def visitors(self) -> int:
        return sum(
            r["count"] for r in self.tables.get("agg_footfall", []) if r["direction"] == "in"
        )

    def dwell(self) -> tuple[int, float]:
        rows = self.tables.get("agg_dwell", [])
        return sum(r["visits"] for r in rows), sum(r["total_s"] for r in rows)

    def queue(self) -> tuple[int, float]:
        rows = self.tables.get("agg_queue", [])
        return sum(r["served"] for r in rows), sum(r["wait_total_s"] for r in rows)


def day_rows(buckets: list[int], seed: int, status: str = "complete") -> DayRows:
    """Rows for these buckets: footfall on two lines, dwell and queue, windows of ``status``."""
    rng = random.Random(seed)
    rows = DayRows({"agg_footfall": [], "agg_windows": [], "agg_dwell": [], "agg_queue": []})
    coverage = {"complete": 1.0, "partial": 0.5, "missing": 0.0}[status]
    for bucket in buckets:
        for line in ("door", "side"):
            for direction in ("in", "out"):
                rows.tables["agg_footfall"].append(
                    {
                        "bucket_ms": bucket,
                        "line_id": line,
                        "direction": direction,
                        "count": rng.randint(0, 9),
                        "rev": 1,
                    }
                )
        rows.tables["agg_windows"].append(
            {
                "bucket_ms": bucket,
                "computed_at_ms": bucket,
                "coverage": coverage,
                "status": status,
                "customers": rng.randint(0, 9),
                "staff": 1,
                "rev": 1,
            }
        )
        visits = rng.randint(0, 6)
        rows.tables["agg_dwell"].append(
            {
                "bucket_ms": bucket,
                "zone_id": "",
                "visits": visits,
                "total_s": round(visits * rng.uniform(30, 600), 3),
                "p10_s": None,
                "p50_s": None,
                "p90_s": None,
                "hist": [visits],
                "rev": 1,
            }
        )
        served = rng.randint(0, 4)
        rows.tables["agg_queue"].append(
            {
                "bucket_ms": bucket,
                "zone_id": "till",
                "joined": served,
                "served": served,
                "abandoned": 0,
                "wait_total_s": round(served * rng.uniform(10, 200), 3),
                "mean_wait_s": None,
                "p90_wait_s": None,
                "mean_len": 1.0,
                "max_len": 2,
                "predicted_mae_s": None,
                "rev": 1,
            }
        )
    return rows


def send_rows(hub: Hub, store_id: str, rows: DayRows) -> None:
    """Ingest a day's rows through the real HTTP path: one signed batch."""
    batch = wire.Batch(store_id, wire.new_batch_id(), int(time.time() * 1000), rows.tables)
    answer = hub.send(batch)
    assert answer.status_code == 200, answer.text


def add_store_to(
    hub: Hub, store_id: str, region: str, tz: str, area: float | None, weekly: list[int] | None
) -> None:
    """Register a store with a known id, region, area and opening hours."""
    with hub.engine.begin() as conn:
        hub.secrets[store_id] = [
            add_store(
                conn,
                store_id,
                f"Shop {store_id}",
                region,
                tz,
                area,
                int(time.time() * 1000),
                weekly,
            )
        ]


def add_account(hub: Hub, name: str, role: str, regions: set[str] | None = None) -> None:
    """Create a dashboard account with :data:`PASSWORD`."""
    with hub.engine.begin() as conn:
        create_user(conn, name, PASSWORD, role, regions or set())


def sign_in(base_url: str, name: str, password: str = PASSWORD) -> requests.Session:
    """A session signed in through the real sign-in form (CSRF token included)."""
    session = requests.Session()
    form = session.get(base_url + "/login", timeout=30)
    token = CSRF.search(form.text)
    assert token, form.text[:500]
    answer = session.post(
        base_url + "/login",
        data={"csrf_token": token[1], "username": name, "password": password, "next": ""},
        timeout=30,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:500]
    fresh = CSRF.search(session.get(base_url + "/login", timeout=30).text)  # the new session's
    assert fresh
    session.headers["X-CSRFToken"] = fresh[1]
    return session


def csv_rows(text: str) -> list[dict[str, str]]:
    """A CSV download's rows as dicts."""
    return list(csv.DictReader(io.StringIO(text)))
