"""Health: what /healthz and /metrics say, through Flask and through a real server."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from appliance.box.health import Health
from appliance.config import BoxConfig, parse_config
from local_db import DbWriter, connect
from vision.worker import WorkerStats
from webui.ops import WebServer, ops_app, ops_blueprint

from .conftest import EXAMPLE_CONFIG

T0 = 1_795_600_800  # 2026-11-25T10:00:00Z, seconds


@pytest.fixture
def config() -> BoxConfig:
    return parse_config(EXAMPLE_CONFIG.read_text() + "runtime: {disk_free_min_mb: 0}\n")


class Clocks:
    """UTC and monotonic time a test moves by hand."""

    def __init__(self) -> None:
        self.utc = float(T0)
        self.mono = 100.0

    def advance(self, seconds: float) -> None:
        self.utc += seconds
        self.mono += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def make_health(config: BoxConfig, tmp_path: Path, clocks: Clocks) -> Health:
    return Health(
        config, tmp_path / "box.db", clock=lambda: clocks.utc, monotonic=lambda: clocks.mono
    )


def metrics(health: Health) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and labels."""
    text = generate_latest(health.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_carry_across_worker_restarts(
    config: BoxConfig, tmp_path: Path, clocks: Clocks
) -> None:
    health = make_health(config, tmp_path, clocks)
    assert health.health_report()["reasons"] == ["camera courtyard: starting (no frames yet)"]
    assert health.set_camera_state("courtyard", T0 * 1000, "up", "streaming")
    assert not health.set_camera_state("courtyard", T0 * 1000, "up", "streaming")
    first = WorkerStats()
    health.attach_counters("courtyard", first)
    for _ in range(10):  # 10 s at 8 frames/s, 1 frame dropped every 2 s
        clocks.advance(1)
        first.frames += 8
        first.dropped += clocks.mono % 2 == 0
        health.sample()
    first.frames += 3  # processed after the last sample, before the crash
    health.camera_crashed("courtyard", exhausted=False)
    second = WorkerStats()
    health.attach_counters("courtyard", second)
    clocks.advance(1)
    second.frames += 8
    health.sample()
    health.points_stored("courtyard", T0 * 1000 + 10_500)
    cam = health.health_report()["cameras"]["courtyard"]
    assert (cam["frames"], cam["dropped_frames"], cam["restarts"]) == (91, 5, 1)
    assert cam["fps"] == pytest.approx(8.3)  # 83 frames over the last 10 s
    assert cam["last_point_ms"] == T0 * 1000 + 10_500
    m = metrics(health)
    camera = (("camera", "courtyard"),)
    assert m[("footfall_camera_frames_total", camera)] == 91
    assert m[("footfall_camera_dropped_frames_total", camera)] == 5
    assert m[("footfall_camera_restarts_total", camera)] == 1
    assert m[("footfall_camera_up", camera)] == 1
    assert m[("footfall_camera_fps", camera)] == pytest.approx(8.3)
    assert m[("footfall_camera_last_point_timestamp_seconds", camera)] == T0 + 10.5
    assert m[("footfall_healthy", ())] == 1


def test_every_reason_to_be_degraded(config: BoxConfig, tmp_path: Path, clocks: Clocks) -> None:
    health = make_health(config, tmp_path, clocks)
    health.set_camera_state("courtyard", T0 * 1000, "down", "rtsp: connection refused")
    health.service_state("alerts", "restarting", "ValueError: bad rule")
    health.job_finished("sync", ok=False, error="ConnectionError: hub unreachable")
    health.analysed_until(T0 * 1000 - 30 * 60_000)
    health.register_sync_lag(lambda: 42.0)
    health.register_queue("alerts", lambda: 3)
    health.alert_raised("crowd-at-crossing")
    health.alert_raised("crowd-at-crossing")
    report = health.health_report()
    assert report["status"] == "degraded"
    assert report["reasons"] == [
        "camera courtyard: down (rtsp: connection refused)",
        "service alerts: restarting (ValueError: bad rule)",
        "job sync: last run failed: ConnectionError: hub unreachable",
        "analytics: 25 min of closed buckets not analysed",
    ]
    assert (report["sync_lag_s"], report["queues"], report["alerts_raised"]) == (
        42.0,
        {"alerts": 3},
        2,
    )
    m = metrics(health)
    assert m[("footfall_sync_lag_seconds", ())] == 42
    assert m[("footfall_queue_length", (("queue", "alerts"),))] == 3
    assert m[("footfall_alerts_raised_total", (("rule", "crowd-at-crossing"),))] == 2
    assert m[("footfall_job_failures_total", (("job", "sync"),))] == 1
    assert m[("footfall_service_up", (("service", "alerts"),))] == 0
    assert m[("footfall_healthy", ())] == 0

    full = parse_config(EXAMPLE_CONFIG.read_text() + "runtime: {disk_free_min_mb: 100000000}\n")
    reasons = Health(full, tmp_path / "box.db").health_report()["reasons"]
    assert any(r.startswith("disk: ") and r.endswith("below 100000000 MiB") for r in reasons)


def test_a_service_running_on_its_last_good_config_is_degraded(
    config: BoxConfig, tmp_path: Path, clocks: Clocks
) -> None:
    health = make_health(config, tmp_path, clocks)
    health.set_camera_state("courtyard", T0 * 1000, "up", "")
    health.service_state("alerts", "running")
    assert "service alerts" not in " ".join(health.health_report()["reasons"])
    health.service_state("alerts", "running", "store.yaml:3: (file): byte 0xff is not UTF-8")
    report = health.health_report()
    assert report["status"] == "degraded"
    assert (
        "service alerts: running (store.yaml:3: (file): byte 0xff is not UTF-8)"
        in (report["reasons"])
    )
    health.service_state("alerts", "running")  # the file is mended: the new rules are in use
    assert "service alerts" not in " ".join(health.health_report()["reasons"])


def test_a_database_write_error_shows_for_a_minute(
    config: BoxConfig, tmp_path: Path, clocks: Clocks
) -> None:
    db = tmp_path / "box.db"
    health = make_health(config, tmp_path, clocks)
    health.set_camera_state("courtyard", T0 * 1000, "up", "streaming")
    with DbWriter(db, busy_timeout_ms=20) as writer:
        health.watch_writer(writer)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        writer.submit_camera_state("courtyard", T0 * 1000, "up")
        deadline = time.monotonic() + 10
        while writer.last_error is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        blocker.execute("ROLLBACK")
        blocker.close()
        writer.flush()
        health.sample()
        report = health.health_report()
        assert report["reasons"] == ["database write failed: OperationalError: database is locked"]
        assert report["db"]["rows_written"] == 1 and report["db"]["bytes"] > 0
        clocks.advance(61)
        health.sample()
        assert health.health_report()["status"] == "ok"


def ready_health(config: BoxConfig, tmp_path: Path, clocks: Clocks) -> Health:
    health = make_health(config, tmp_path, clocks)
    health.set_camera_state("courtyard", T0 * 1000, "up", "streaming")
    return health


def test_the_blueprint_in_a_minimal_app(config: BoxConfig, tmp_path: Path, clocks: Clocks) -> None:
    health = ready_health(config, tmp_path, clocks)
    app = Flask(__name__)
    app.register_blueprint(ops_blueprint(health))
    client = app.test_client()
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.json is not None and ok.json["status"] == "ok"
    scrape = client.get("/metrics")
    assert scrape.status_code == 200 and scrape.content_type.startswith("text/plain")
    assert 'footfall_camera_up{camera="courtyard"} 1.0' in scrape.text
    health.set_camera_state("courtyard", T0 * 1000, "down", "usb: unplugged")
    down = client.get("/healthz")
    assert down.status_code == 503 and down.json is not None
    assert down.json["reasons"] == ["camera courtyard: down (usb: unplugged)"]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_a_real_server_on_a_free_port(config: BoxConfig, tmp_path: Path, clocks: Clocks) -> None:
    health = ready_health(config, tmp_path, clocks)
    server = WebServer(ops_app(health), "127.0.0.1", 0)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    try:
        assert server.ready.wait(10)
        base = f"http://127.0.0.1:{server.port}"
        status, ctype, body = get(f"{base}/healthz")
        report: dict[str, Any] = json.loads(body)
        assert (status, ctype, report["status"]) == (200, "application/json", "ok")
        status, ctype, body = get(f"{base}/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=")
        assert "footfall_camera_frames_total" in body
        health.camera_ended("courtyard")
        status, _, body = get(f"{base}/healthz")
        assert status == 503 and json.loads(body)["reasons"] == [
            "camera courtyard: ended (source ended)"
        ]
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(urllib.error.URLError):  # the port is closed
        urllib.request.urlopen(base, timeout=2)


def test_db_size_counts_the_wal(config: BoxConfig, tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    health = Health(config, db)
    assert health.health_report()["db"]["bytes"] is None
    with closing(connect(db)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (randomblob(100000))")
        expected = db.stat().st_size + (tmp_path / "box.db-wal").stat().st_size
        assert health.health_report()["db"]["bytes"] == expected > 100_000


def test_people_queuing_are_reported_per_zone(
    config: BoxConfig, tmp_path: Path, clocks: Clocks
) -> None:
    health = make_health(config, tmp_path, clocks)
    health.customers_queued({"till-queue": 4, "deli-queue": 0})
    assert health.health_report()["customer_queues"] == {"till-queue": 4, "deli-queue": 0}
    samples = metrics(health)
    assert samples[("footfall_customer_queue_length", (("zone", "till-queue"),))] == 4
    health.customers_queued({"till-queue": 1})
    assert metrics(health)[("footfall_customer_queue_length", (("zone", "till-queue"),))] == 1
