"""One live config for ``footfall run``: an edit reaches the running box without a restart."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance.alerts import AlertEngine
from appliance.box.health import Health
from appliance.box.runtime import Box
from appliance.box.scheduler import BoxScheduler
from appliance.box.supervisor import RestartPolicy
from appliance.config import CameraConfig
from appliance.config.live import LiveConfig
from local_db import DbWriter, connect
from vision.worker import PointSink, StateSink, WorkerStats

from .conftest import wait_for
from .stores import ONE_CAMERA_SHOP
from .webui_support import csrf_token, make_app, post_json, sign_in

T0 = 1_764_064_800_000  # 2025-11-25T10:00:00Z, a bucket boundary
MIN = 60_000
DOOR: dict[str, object] = {"id": "door", "a": [4, 7], "b": [6, 7], "in_side": "right"}
DISPLAY: dict[str, object] = {
    "id": "display",
    "kind": "display",
    "polygon": [[1, 1], [4, 1], [4, 4], [1, 4]],
}


RULE = "alerts:\n  - {id: busy, kind: store_occupancy, raise_at: 9, clear_at: 1}\n"
NEW_PAIRS = [
    {"image": [0, 0], "floor": [0, 0]},
    {"image": [800, 0], "floor": [9, 0]},
    {"image": [800, 600], "floor": [9, 8]},
    {"image": [0, 600], "floor": [0, 8]},
]
#: a worker the test stops is rebuilt at once, not after a second's backoff
FAST = RestartPolicy(backoff_initial_s=0.01, backoff_max_s=0.05)


class Idle:
    """A camera worker that is up but sees nobody until it is stopped; it keeps its config."""

    def __init__(self, camera: CameraConfig, on_state: StateSink) -> None:
        self.camera = camera
        self.stats = WorkerStats()
        self._on_state = on_state

    def run(self, stop: threading.Event) -> WorkerStats:
        self._on_state(self.camera.id, round(time.time() * 1000), "up", "streaming")
        while not stop.wait(0.05):
            self.stats.frames += 1
        return self.stats


def store(tmp_path: Path) -> Path:
    """The one-camera shop (a door, no zones) with its database in ``tmp_path``."""
    path = tmp_path / "store.yaml"
    path.write_text(
        ONE_CAMERA_SHOP
        + f"storage: {{db_path: {tmp_path / 'box.db'}}}\nruntime: {{disk_free_min_mb: 0}}\n"
        + RULE
    )
    return path


def someone_at_the_display(db: Path) -> None:
    """cam-a up since before T0; one person standing in the display area for 15 minutes."""
    with DbWriter(db) as writer:
        writer.submit_camera_state("cam-a", T0 - 1000, "up", "streaming")
        writer.submit_points([("cam-a", 1, T0 + s * 1000, 2.5, 2.5, 0.9) for s in range(900)])


def occupancy(db: Path, zone_id: str) -> dict[int, int]:
    """Minute after T0 → the zone's peak occupancy, per analysed bucket."""
    with closing(connect(db, readonly=True)) as conn:
        rows = conn.execute(
            "SELECT bucket_ms, max FROM agg_occupancy WHERE zone_id = ? ORDER BY bucket_ms",
            (zone_id,),
        ).fetchall()
    return {(b - T0) // MIN: n for b, n in rows}


def analytics_runs(box: Box) -> int:
    job = box.health.health_report()["jobs"].get("analytics")
    return 0 if job is None else int(job["runs"])


def run_analytics_now(box: Box, jobs: BoxScheduler) -> None:
    """Have the running scheduler run its analytics job once more, and wait for it."""
    before = analytics_runs(box)
    scheduler = jobs.scheduler
    assert scheduler is not None
    job = scheduler.get_job("analytics")
    assert job is not None
    scheduler.modify_job("analytics", next_run_time=datetime.now(job.next_run_time.tzinfo))
    wait_for(lambda: analytics_runs(box) > before, 30, "the analytics job")


@dataclass
class Running:
    """``footfall run``'s parts on one live config, cameras replaced by :class:`Idle` workers."""

    path: Path
    db: Path
    live: LiveConfig
    box: Box
    jobs: BoxScheduler
    alerts: AlertEngine
    client: FlaskClient
    token: str
    now: list[float]  # the scheduler's clock, UTC seconds
    built: list[Idle]

    def save_layout(self, zones: list[dict[str, object]]) -> None:
        body = {"zones": zones, "lines": [DOOR]}
        saved = post_json(self.client, "/installer/layout", body, self.token)
        assert saved.status_code == 200, saved.get_json()

    def analyse_at(self, minute: int) -> None:
        self.now[0] = (T0 + minute * MIN) / 1000
        run_analytics_now(self.box, self.jobs)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    path = store(tmp_path)
    db = tmp_path / "box.db"
    someone_at_the_display(db)
    now = [(T0 + 6 * MIN) / 1000]
    built: list[Idle] = []

    def factory(camera: CameraConfig, _points: PointSink, on_state: StateSink) -> Idle:
        built.append(Idle(camera, on_state))
        return built[-1]

    live = LiveConfig(path)  # as `footfall run` builds its parts: one live config for all
    health = Health(live.current(), db, clock=lambda: now[0])
    box = Box(live, db, worker_factory=factory, health=health, policy=FAST)
    jobs = BoxScheduler(live, db, health=box.health, clock=lambda: now[0])
    alerts = AlertEngine(live, db)
    box.add_service(jobs)
    box.add_service(alerts)
    app = make_app(tmp_path, live, frames=box.frame_jpeg)
    client = app.test_client()
    assert sign_in(client, "installer") == 302
    token = csrf_token(client, "/installer/")
    box.start()
    try:
        wait_for(lambda: analytics_runs(box) >= 1, 30, "the analytics job at start")
        wait_for(lambda: box.health.health_report()["status"] == "ok", 10, "the box healthy")
        yield Running(path, db, live, box, jobs, alerts, client, token, now, built)
    finally:
        box.stop()
        alerts.close()


def corrupt(path: Path) -> None:
    """Put a byte that is not UTF-8 into the file (as a bad editor or disk would)."""
    before = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes().replace(b"Test shop", b"Test \xff shop"))
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_zone_saved_in_the_editor_reaches_the_next_minute_analytics(running: Running) -> None:
    db = running.db
    assert occupancy(db, "") == {0: 1} and occupancy(db, "display") == {}
    running.save_layout([DISPLAY])  # no restart: the box runs on
    running.analyse_at(11)  # the next bucket closes
    assert occupancy(db, "display") == {0: 1, 5: 1}
    assert [z.id for z in running.box.config.zones] == ["display"]
    assert len(running.built) == 1, "a zone does not rebuild the camera worker"


def test_a_bad_file_keeps_the_last_good_config_everywhere_and_shows_in_health(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    running.save_layout([DISPLAY])
    caplog.set_level(logging.INFO)
    good = running.path.read_bytes()
    corrupt(running.path)
    for _ in range(3):
        running.box.tick()  # the box looks at the file every second
    (reason,) = running.box.health.health_report()["reasons"]
    assert reason.startswith("config: store.yaml:2: (file): byte 0xff at column 30 is not UTF-8")
    assert reason.endswith(" (running on the last good version)")
    assert running.box.health.public_report()["reasons"] == [reason]
    warnings = [r for r in caplog.records if r.name == "appliance.config.live"]
    assert [r.levelno for r in warnings] == [logging.WARNING], "one warning per bad version"
    assert not [r for r in caplog.records if r.exc_info], "no traceback"
    # every part runs on the last good version: the analytics, the dashboard, the alerts
    running.analyse_at(16)
    assert occupancy(running.db, "display") == {0: 1, 5: 1, 10: 1}
    page = running.client.get("/installer/")
    assert page.status_code == 200 and "display" in page.get_data(as_text=True)
    wait_for(lambda: running.alerts.errors, 10, "the alert engine to see the bad file")
    assert "0xff" in running.alerts.errors[0]
    assert [r.id for r in running.alerts.config.alerts] == ["busy"]
    assert [z.id for z in running.alerts.config.zones] == ["display"]
    # the installer puts the good file back: health is clear, the zone still counted
    running.path.write_bytes(good)
    running.box.tick()
    assert running.box.health.health_report()["reasons"] == []
    wait_for(lambda: not running.alerts.errors, 10, "the alert engine to see the good file")
    assert [z.id for z in running.box.config.zones] == ["display"]


def test_a_calibration_change_rebuilds_that_camera_worker(running: Running) -> None:
    (first,) = running.built
    assert [p.floor for p in first.camera.calibration][1] == (10, 0)
    saved = post_json(
        running.client, "/installer/cameras/cam-a/calibration", {"pairs": NEW_PAIRS}, running.token
    )
    assert saved.status_code == 200, saved.get_json()
    wait_for(lambda: len(running.built) == 2, 10, "the camera worker rebuilt")
    assert [list(p.floor) for p in running.built[1].camera.calibration] == [
        p["floor"] for p in NEW_PAIRS
    ]
    running.box.tick()
    camera = running.box.health.health_report()["cameras"]["cam-a"]
    assert camera["restarts"] == 0, "a rebuild is not a crash"
    assert running.box.cameras_running() == ["cam-a"]
