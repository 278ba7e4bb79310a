"""The box end to end: a camera worker is killed, restarted, and its camera_down alert
is raised by the alert engine (running as a box service) and cleared when it is back."""

from __future__ import annotations

import threading
import time
from contextlib import closing
from pathlib import Path

from appliance.alerts import AlertEngine, alert_history
from appliance.box.runtime import Box
from appliance.box.supervisor import RestartPolicy
from appliance.config import CameraConfig, load_config
from local_db import connect
from vision.worker import PointSink, StateSink, WorkerStats

from .conftest import EXAMPLE_CONFIG, wait_for

RULE = "  - {id: camera-down, kind: camera_down, raise_at: 1, clear_at: 0, severity: critical}\n"
# the supervisor waits 2 s before it rebuilds a killed worker: the camera is down meanwhile
PAUSE = RestartPolicy(
    max_restarts=3, window_s=600, backoff_initial_s=2.0, backoff_max_s=2.0, down_retry_s=5.0
)


class Killable:
    """A camera worker that streams until the test kills it."""

    def __init__(self, camera_id: str, on_state: StateSink, kill: threading.Event) -> None:
        self.camera_id = camera_id
        self.stats = WorkerStats()
        self._on_state = on_state
        self._kill = kill

    def run(self, stop: threading.Event) -> WorkerStats:
        self._on_state(self.camera_id, round(time.time() * 1000), "up", "streaming")
        while not stop.wait(0.05):
            self.stats.frames += 1
            if self._kill.is_set():
                self._kill.clear()
                raise RuntimeError("killed by the test")
        return self.stats


def test_a_killed_camera_worker_is_restarted_and_its_alert_raised_then_cleared(
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "store.yaml"
    text = EXAMPLE_CONFIG.read_text().replace("alerts:\n", "alerts:\n" + RULE, 1)
    config_path.write_text(text + "runtime: {disk_free_min_mb: 0}\n")
    config = load_config(config_path)
    db = tmp_path / "box.db"
    kill = threading.Event()
    built: list[Killable] = []

    def factory(camera: CameraConfig, on_points: PointSink, on_state: StateSink) -> Killable:
        built.append(Killable(camera.id, on_state, kill))
        return built[-1]

    alerts = AlertEngine(config_path, db)
    box = Box(config, db, worker_factory=factory, policy=PAUSE, services=[alerts])

    def history() -> list[tuple[str, int | None]]:
        with closing(connect(db, readonly=True)) as conn:
            return [(a.target, a.cleared_ms) for a in alert_history(conn, rule_id="camera-down")]

    box.start()
    try:
        wait_for(lambda: len(built) == 1 and built[0].stats.frames > 20, 10, "the camera up")
        assert history() == []
        kill.set()
        wait_for(lambda: len(history()) == 1, 10, "the camera_down alert")
        assert history()[0] == ("courtyard", None)  # active while the worker is down
        wait_for(lambda: history()[0][1] is not None, 15, "the alert to clear after the restart")
        box.tick()
        report = box.health.health_report()
    finally:
        box.stop()
        alerts.close()
    assert len(built) == 2, "the killed worker was rebuilt once"
    assert report["cameras"]["courtyard"]["restarts"] == 1
    assert report["cameras"]["courtyard"]["state"] == "up"
    assert len(history()) == 1, "one episode, one alert"
