"""``footfall alerts bench``: what the live state and the alert loop cost on a busy store.

A 40 x 30 m store seen by 8 overlapping cameras (a 4 x 2 grid, 1.5 m overlaps) with
``people`` random walkers at 10 points per second per camera that sees them, a new
track id every ~30 s per camera and 8 cm of jitter. ``minutes`` of history are written
first (the lookback), then every second one more second of points is committed and
the snapshot (and the whole alert tick) is timed. Latency: a batch putting people in
a queue is committed while :meth:`AlertEngine.run` ticks in real time; the time until
its ``alert_log`` row appears is measured.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.alerts.engine import AlertEngine
from appliance.alerts.log import alert_history
from appliance.analytics.live import LiveCache, snapshot
from appliance.config import BoxConfig, load_config
from local_db import DbWriter, connect, migrate

WIDTH_M, DEPTH_M, HZ = 40.0, 30.0, 10
QUEUE_ALERT = 20  # people in the queue zone; the latency batch puts 32 there
_CAMERA = (
    "  - {{id: cam-{i}, source: 'sim:bench', fps: 10, resolution: [800, 600], calibration: ["
    "{{image: [0, 0], floor: [0, 0]}}, {{image: [800, 0], floor: [10, 0]}}, "
    "{{image: [800, 600], floor: [10, 8]}}, {{image: [0, 600], floor: [0, 8]}}]}}"
)
STORE = """config_version: 1
store: {{id: bench, name: Busy store, timezone: Europe/London, capacity: 400}}
cameras:
{cameras}
floor_plan: {{width_m: 40, depth_m: 30}}
zones:
  - {{id: fashion, kind: display, polygon: [[1, 1], [10, 1], [10, 10], [1, 10]]}}
  - {{id: shoes, kind: display, polygon: [[12, 1], [20, 1], [20, 10], [12, 10]]}}
  - {{id: queue, kind: queue, polygon: [[30, 20], [33, 20], [33, 28], [30, 28]]}}
  - {{id: till, kind: service_point, polygon: [[30, 28], [33, 28], [33, 30], [30, 30]]}}
  - {{id: office, kind: staff_only, polygon: [[0, 25], [5, 25], [5, 30], [0, 30]]}}
alerts:
  - {{id: occupancy, kind: store_occupancy, raise_at: 90, clear_at: 80, of_capacity: true}}
  - {{id: dense, kind: density, target: fashion, raise_at: 2, clear_at: 1}}
  - {{id: cover, kind: staffing_gap, target: shoes, raise_at: 60, clear_at: 0}}
  - {{id: wait, kind: predicted_wait, target: queue, raise_at: 300, clear_at: 120}}
  - {{id: long-queue, kind: queue_length, target: queue, raise_at: {queue_alert}, clear_at: 0}}
  - {{id: cams, kind: camera_down, raise_at: 1, clear_at: 0, min_duration_s: 10}}
"""


class _Walkers:
    """Random walkers and the 8 cameras' noisy, ID-switching view of them."""

    def __init__(self, people: int, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.pos = np.column_stack(
            [self.rng.uniform(0, WIDTH_M, people), self.rng.uniform(0, DEPTH_M, people)]
        )
        self.vel = self.rng.normal(0, 0.5, (people, 2))
        self.track = self.rng.integers(1, 2**62, (people, 8))
        self.fovs = [
            (cx * 10 - 1.5, cy * 15 - 1.5, cx * 10 + 11.5, cy * 15 + 16.5)
            for cx in range(4)
            for cy in range(2)
        ]

    def second(self, t0_ms: int) -> list[tuple[str, int, int, float, float, float]]:
        rows: list[tuple[str, int, int, float, float, float]] = []
        for k in range(HZ):
            self.vel = np.clip(self.vel + self.rng.normal(0, 0.05, self.vel.shape), -1, 1)
            self.pos = np.clip(self.pos + self.vel / HZ, 0, [WIDTH_M, DEPTH_M])
            switch = self.rng.random(self.track.shape) < 1 / (30 * HZ)
            self.track[switch] = self.rng.integers(1, 2**62, int(switch.sum()))
            for c, (x0, y0, x1, y1) in enumerate(self.fovs):
                p = self.pos
                seen = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
                xy = p[seen] + self.rng.normal(0, 0.08, (int(seen.sum()), 2))
                rows += zip(
                    [f"cam-{c}"] * len(xy),
                    self.track[seen, c].tolist(),
                    [t0_ms + k * 100] * len(xy),
                    xy[:, 0].tolist(),
                    xy[:, 1].tolist(),
                    [0.8] * len(xy),
                    strict=True,
                )
        return rows


def _write(conn: Any, rows: list[tuple[str, int, int, float, float, float]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO track_points VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")


def bench_alerts(people: int = 200, minutes: float = 10, ticks: int = 30) -> dict[str, Any]:
    """Measure; returns the numbers ``footfall alerts bench`` prints."""
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "store.yaml"
        cameras = "\n".join(_CAMERA.format(i=i) for i in range(8))
        config_path.write_text(STORE.format(cameras=cameras, queue_alert=QUEUE_ALERT))
        config: BoxConfig = load_config(config_path)
        db = Path(tmp) / "bench.db"
        conn = connect(db)
        migrate(conn)
        walkers = _Walkers(people)
        start = int(time.time() * 1000) - round(minutes * 60_000) - ticks * 1000
        history = round(minutes * 60)
        for s in range(history):
            _write(conn, walkers.second(start + s * 1000))
        points = int(conn.execute("SELECT count(*) FROM track_points").fetchone()[0])
        cache = LiveCache(config)
        t = time.perf_counter()
        snapshot(conn, config, start + history * 1000, cache=cache)
        cold_ms = (time.perf_counter() - t) * 1000
        snap_ms = []
        for s in range(history, history + ticks // 2):
            _write(conn, walkers.second(start + s * 1000))
            t = time.perf_counter()
            snapshot(conn, config, start + (s + 1) * 1000, cache=cache)
            snap_ms.append((time.perf_counter() - t) * 1000)
        engine = AlertEngine(config_path, db)
        engine.tick(start + (history + ticks // 2) * 1000)  # its first tick reads the lookback
        tick_ms = []
        for s in range(history + ticks // 2, history + ticks):
            _write(conn, walkers.second(start + s * 1000))
            t = time.perf_counter()
            engine.tick(start + (s + 1) * 1000)
            tick_ms.append((time.perf_counter() - t) * 1000)
        latency_ms = _latency(engine, db)
        engine.close()
        conn.close()
    return {
        "cameras": len(config.cameras),
        "people": people,
        "history_points": points,
        "cores": os.cpu_count(),
        "cold_snapshot_ms": round(cold_ms, 1),
        "snapshot_ms_mean": round(float(np.mean(snap_ms)), 1),
        "snapshot_ms_p95": round(float(np.percentile(snap_ms, 95)), 1),
        "tick_ms_mean": round(float(np.mean(tick_ms)), 1),
        "latency_ms": round(latency_ms, 1),
    }


def _latency(engine: AlertEngine, db: Path) -> float:
    """Commit a batch that fills the queue; time until the ticking engine's alert row exists."""
    stop = threading.Event()
    runner = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    runner.start()
    check = connect(db, readonly=True)
    try:
        time.sleep(2.5)  # a few real-time ticks
        now = int(time.time() * 1000)
        spots = [(30.3 + 0.8 * i, 20.3 + 1.05 * j) for i in range(4) for j in range(8)]
        batch = [
            ("cam-7", 10**12 + i, now - 500 + k * 100, x, y, 0.9)
            for i, (x, y) in enumerate(spots)
            for k in range(6)
        ]
        with DbWriter(db) as writer:
            writer.submit_points(batch)
            writer.flush()
            written = time.monotonic()
        while time.monotonic() - written < 30:
            if any(a.rule_id == "long-queue" for a in alert_history(check, since_ms=now - 1000)):
                break
            time.sleep(0.005)
        return (time.monotonic() - written) * 1000
    finally:
        stop.set()
        runner.join(10)
        check.close()
