"""``footfall bench webui``: the dashboard's server time per page on a month of aggregates.

The database holds a month of 5-minute buckets for a 40 x 25 m store with 20 zones,
written directly as synthetic aggregate rows (not computed by the engine: a month
of trajectories would take hours to simulate), with 2 % partial and 1 % missing
buckets. Each page is requested through Flask's test client by a signed-in manager,
as a full page and as its htmx fragment; the median of N requests is its server time,
as wall time and as the serving thread's CPU time (which other load on the machine
does not inflate).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from appliance.analytics.engine import BUCKET_MS, DWELL_BINS_S, FUNNEL_STEPS
from local_db import connect

NOW_MS = 1_764_093_600_000  # 2025-11-25T18:00:00Z (18:00 in Europe/London)
DAYS = 30
FLOOR = (40.0, 25.0)
CELL_M = 0.25
CELLS_PER_BUCKET = 150
PAIRS_PER_BUCKET = 30
ALERTS = 300  # over the month; the newest two still active
TARGET_MS = 100.0

#: the pages timed: (name, URL)
PAGES = (
    ("today", "/"),
    ("live", "/live"),
    ("heatmap today", "/heatmap"),
    ("heatmap yesterday k=3", "/heatmap?window=yesterday&k=3"),
    ("dwell today", "/dwell"),
    ("queues today", "/queues"),
    ("queues month", "/queues?window=custom&from=2025-10-26&to=2025-11-25"),
    ("flow today", "/flow"),
    ("trends by hour", "/trends?period=hour"),
    ("trends by day", "/trends?period=day"),
    ("trends by week", "/trends?period=week"),
    ("trends by month", "/trends?period=month"),
    ("compare 7 vs 7 days", "/compare"),
    ("alerts", "/alerts"),
    ("health", "/health"),
)


def bench_store_yaml(db_path: Path) -> str:
    """The store: 40 x 25 m, one camera, two doors, 12 displays and 4 queues with 4 tills."""
    zones = []
    for i in range(12):
        x, y = 2 + (i % 6) * 6, 2 + (i // 6) * 7
        zones.append(f"  - {{id: display-{i + 1}, kind: display, polygon: {_box(x, y, 4, 5)}}}")
    for i in range(4):
        x = 4 + i * 8
        zones.append(f"  - {{id: queue-{i + 1}, kind: queue, polygon: {_box(x, 17, 2, 3)}}}")
        zones.append(f"  - {{id: till-{i + 1}, kind: service_point, polygon: {_box(x, 20, 2, 2)}}}")
    return f"""config_version: 1
store: {{id: bench, name: Bench store, timezone: Europe/London}}
cameras:
  - id: cam
    source: sim:bench
    fps: 10
    resolution: [800, 500]
    calibration:
      - {{image: [0, 0], floor: [0, 0]}}
      - {{image: [800, 0], floor: [40, 0]}}
      - {{image: [800, 500], floor: [40, 25]}}
      - {{image: [0, 500], floor: [0, 25]}}
floor_plan: {{width_m: 40, depth_m: 25}}
lines:
  - {{id: door-a, a: [10, 24.5], b: [14, 24.5], in_side: right}}
  - {{id: door-b, a: [26, 24.5], b: [30, 24.5], in_side: right}}
zones:
{chr(10).join(zones)}
storage: {{db_path: {db_path}}}
"""


def _box(x: float, y: float, w: float, h: float) -> str:
    return f"[[{x}, {y}], [{x + w}, {y}], [{x + w}, {y + h}], [{x}, {y + h}]]"


def _rows(*columns: Any) -> Iterator[tuple[Any, ...]]:
    return zip(*(c.tolist() if isinstance(c, np.ndarray) else c for c in columns), strict=True)


def fill_month(
    db: Path, zone_ids: list[str], queue_ids: list[str], seed: int = 5
) -> dict[str, int]:
    """Write a month of synthetic aggregate rows, alerts, and 10 minutes of live points.

    Returns:
        Rows written per table.
    """
    rng = np.random.default_rng(seed)
    t0 = NOW_MS - NOW_MS % BUCKET_MS - DAYS * 86_400_000
    b = np.arange(t0, NOW_MS - NOW_MS % BUCKET_MS, BUCKET_MS, dtype=np.int64)
    n = len(b)
    hour = (b // 3_600_000) % 24
    busy = np.clip(np.sin((hour - 6) / 14 * np.pi), 0, None)  # open 6-20 h
    status = rng.choice(["complete", "partial", "missing"], n, p=[0.97, 0.02, 0.01])
    cov = np.where(status == "complete", 1.0, np.where(status == "partial", 0.5, 0.0))
    counts: dict[str, int] = {}
    conn = connect(db)
    try:
        conn.execute("BEGIN")

        def put(table: str, rows: Iterator[tuple[Any, ...]], width: int) -> None:
            marks = ", ".join("?" * width)
            cur = conn.executemany(f"INSERT INTO {table} VALUES ('bench', {marks})", rows)
            counts[table] = counts.get(table, 0) + cur.rowcount

        put("agg_windows", _rows(b, b, cov, status, (busy * 40).astype(int), np.full(n, 3)), 6)
        for line in ("door-a", "door-b"):
            for direction in ("in", "out"):
                put("agg_footfall", _rows(b, [line] * n, [direction] * n, rng.poisson(busy * 6)), 4)
        for zone in ["", *zone_ids]:
            mean = busy * rng.uniform(1, 4)
            put("agg_occupancy", _rows(b, [zone] * n, mean, np.ceil(mean * 1.5).astype(int)), 4)
        for zone in zone_ids:
            visits = rng.poisson(busy * 5)
            hist = rng.multinomial(visits, np.full(len(DWELL_BINS_S), 1 / len(DWELL_BINS_S)))
            p50 = np.where(visits > 0, rng.uniform(10, 90, n), np.nan)
            put(
                "agg_dwell",
                _rows(
                    b, [zone] * n, visits, visits * np.nan_to_num(p50), p50 / 3, p50, p50 * 3,
                    [json.dumps(h) for h in hist.tolist()],
                ),
                8,
            )  # fmt: skip
        for zone in queue_ids:
            joined = rng.poisson(busy * 3)
            abandoned = rng.binomial(joined, 0.1)
            served = joined - abandoned
            wait = rng.uniform(20, 120, n)
            mean_wait = np.where(served > 0, wait, np.nan)
            put(
                "agg_queue",
                _rows(
                    b, [zone] * n, joined, served, abandoned, served * wait, mean_wait,
                    mean_wait * 2, busy * 2, np.ceil(busy * 4).astype(int), mean_wait / 4,
                ),
                11,
            )  # fmt: skip
        cols, depth = int(FLOOR[0] / CELL_M), int(FLOOR[1] / CELL_M)
        offset = rng.integers(0, cols * depth, n)
        for i in range(CELLS_PER_BUCKET):
            idx = (offset + i * 97) % (cols * depth)  # 97 is prime to the cell count: distinct
            person_s, seen = rng.uniform(1, 60, n), rng.integers(1, 6, n)
            put("agg_heatmap", _rows(b, idx % cols, idx // cols, person_s, seen), 5)
        pairs = [(a, c) for a in zone_ids for c in zone_ids if a != c][:PAIRS_PER_BUCKET]
        for a, c in pairs:
            put("agg_transitions", _rows(b, [a] * n, [c] * n, rng.poisson(busy * 2) + 1), 4)
        people = rng.poisson(busy * 12)
        for step, kind in enumerate(("in", *FUNNEL_STEPS)):
            people = rng.binomial(people, 0.8) if step else people
            put("agg_funnel", _rows(b, np.full(n, step), [kind] * n, people), 4)
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        t = np.arange(NOW_MS - 600_000, NOW_MS, 200, dtype=np.int64)
        points = [
            (
                "cam",
                1000 + p,
                int(ts),
                float(5 + p % 30 + np.sin(ts / 9e3 + p)),
                float(3 + p % 20),
                0.9,
            )
            for p in range(30)
            for ts in t[p % 5 :: 5]
        ]
        conn.executemany("INSERT INTO track_points VALUES (?, ?, ?, ?, ?, ?)", points)
        conn.execute("INSERT INTO camera_events VALUES ('cam', ?, 'up', '')", (t0,))
        raised = np.sort(rng.integers(t0, NOW_MS, ALERTS))
        alerts = [
            ("bench", f"rule-{i % 5}", "queue_length", queue_ids[i % len(queue_ids)], "warning",
             int(r), None if i >= ALERTS - 2 else int(r) + 600_000, 6.0, "queue too long")
            for i, r in enumerate(raised.tolist())
        ]  # fmt: skip
        conn.executemany(
            "INSERT INTO alert_log (store_id, rule_id, kind, target, severity, raised_ms, "
            "cleared_ms, value, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            alerts,
        )
        counts["alert_log"] = len(alerts)
        conn.execute("COMMIT")
        counts["track_points"] = len(points)
    finally:
        conn.close()
    return counts


def _median_ms(
    client: Any, url: str, headers: dict[str, str], repeat: int
) -> tuple[float, float, int]:
    """Median wall and CPU milliseconds of ``repeat`` requests, and the answer's size.

    The test client runs the request in this thread, so the thread's CPU time is the
    server's work, whatever else the machine is doing; wall time includes waiting.
    """
    wall, cpu, size = [], [], 0
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.thread_time()
        response = client.get(url, headers=headers)
        cpu.append((time.thread_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}")
        size = len(response.data)
    return statistics.median(wall), statistics.median(cpu), size


def bench_webui(repeat: int = 7) -> dict[str, Any]:
    """Fill the month, then time every page (median of ``repeat``); JSON-ready summary."""
    from webui import create_app
    from webui.accounts import create_user

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "month.db"
        config = folder / "bench.yaml"
        config.write_text(bench_store_yaml(db))
        app = create_app(config, db, testing=True)
        app.config["FOOTFALL_CLOCK"] = lambda: NOW_MS / 1000
        ctx_config = app.extensions["footfall"].config
        zones = [z.id for z in ctx_config.zones]
        queues = [z.id for z in ctx_config.zones if z.kind == "queue"]
        start = time.perf_counter()
        rows = fill_month(db, zones, queues)
        fill_s = time.perf_counter() - start
        conn = connect(db)
        try:
            create_user(conn, "bench", "timing only 4821", "manager")
        finally:
            conn.close()
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post(
            "/login",
            data={"username": "bench", "password": "timing only 4821", "csrf_token": token},
        )
        known = {rule.rule for rule in app.url_map.iter_rules()}
        pages: list[dict[str, Any]] = []
        for name, url in PAGES:
            if url.split("?")[0] not in known:
                continue
            client.get(url)  # warm: templates compiled, caches filled
            full, full_cpu, full_bytes = _median_ms(client, url, {}, repeat)
            frag, frag_cpu, frag_bytes = _median_ms(client, url, {"HX-Request": "true"}, repeat)
            pages.append(
                {"page": name, "url": url, "full_ms": round(full, 1), "fragment_ms": round(frag, 1),
                 "full_cpu_ms": round(full_cpu, 1), "fragment_cpu_ms": round(frag_cpu, 1),
                 "full_kb": round(full_bytes / 1024, 1), "fragment_kb": round(frag_bytes / 1024, 1)}
            )  # fmt: skip
        db_mb = db.stat().st_size / 2**20
    worst = max(max(p["full_ms"], p["fragment_ms"]) for p in pages)
    worst_cpu = max(max(p["full_cpu_ms"], p["fragment_cpu_ms"]) for p in pages)
    return {
        "data": "synthetic aggregate rows written directly (not the engine's output)",
        "days": DAYS,
        "zones": len(zones),
        "rows": rows,
        "db_mb": round(db_mb, 1),
        "fill_s": round(fill_s, 1),
        "repeat": repeat,
        "pages": pages,
        "worst_ms": worst,
        "worst_cpu_ms": worst_cpu,
        "load_1min": round(os.getloadavg()[0], 1),
        "target_ms": TARGET_MS,
        "cores": os.cpu_count(),
    }
