"""Crashed camera workers and services are restarted within a budget, and recorded."""

from __future__ import annotations

import itertools
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from appliance.box.cameras import build_worker
from appliance.box.runtime import Box, CameraRunnable
from appliance.box.supervisor import RestartBudget, RestartPolicy
from appliance.config import BoxConfig, CameraConfig, parse_config
from local_db import camera_events, connect, count_track_points
from vision.detectors import Detector, OnnxDetectorConfig, create_detector
from vision.types import Detections
from vision.worker import PointSink, StateSink, WorkerStats

from .conftest import EXAMPLE_CONFIG, wait_for

FAST = RestartPolicy(
    max_restarts=3, window_s=600, backoff_initial_s=0.01, backoff_max_s=0.05, down_retry_s=0.5
)


def events(box: Box) -> list[tuple[str, str]]:
    """The camera events the box has stored so far."""
    box.writer.flush()
    with closing(connect(box.db_path, readonly=True)) as conn:
        return [(e[2], e[3]) for e in camera_events(conn)]


@pytest.fixture
def config(vtest: Path) -> BoxConfig:
    text = EXAMPLE_CONFIG.read_text().replace("source: asset:vtest.avi", f"source: {vtest}")
    return parse_config(text + "runtime: {disk_free_min_mb: 0}\n")


def test_the_budget_backs_off_then_is_spent_then_recovers() -> None:
    now = [0.0]
    budget = RestartBudget(RestartPolicy(), clock=lambda: now[0])
    delays = []
    for _ in range(7):
        delays.append(budget.record()[:2])
        now[0] += 10
    assert delays == [(1, False), (2, False), (4, False), (8, False), (16, False),
                      (300, True), (300, True)]  # fmt: skip
    now[0] += 600  # the window has room again
    assert budget.record() == (1, False, 1)


class Flaky:
    """A camera worker that comes up, then crashes, ``crashes`` times in all."""

    failures = 0

    def __init__(self, camera_id: str, on_state: StateSink, crashes: int) -> None:
        self.camera_id = camera_id
        self.stats = WorkerStats()
        self._on_state = on_state
        self._crashes = crashes

    def run(self, stop: threading.Event) -> WorkerStats:
        self._on_state(self.camera_id, round(time.time() * 1000), "up", "streaming")
        self.stats.frames += 5
        if Flaky.failures < self._crashes:
            Flaky.failures += 1
            raise RuntimeError(f"decoder fault {Flaky.failures}")
        stop.wait()
        return self.stats


def test_a_crashing_worker_is_restarted_and_its_camera_recorded_down_then_up(
    tmp_path: Path, config: BoxConfig
) -> None:
    Flaky.failures = 0

    def factory(camera: CameraConfig, on_points: PointSink, on_state: StateSink) -> Flaky:
        return Flaky(camera.id, on_state, crashes=2)

    box = Box(config, tmp_path / "box.db", worker_factory=factory, policy=FAST)
    box.start()
    try:
        wait_for(lambda: len(events(box)) == 5, 10, "five camera events")
        box.tick()
        report = box.health.health_report()
        stored = events(box)
    finally:
        box.stop()
    assert [e[0] for e in stored] == ["up", "down", "up", "down", "up"]
    assert stored[1][1] == "worker crashed (restarting): RuntimeError: decoder fault 1"
    cam = report["cameras"]["courtyard"]
    assert (cam["state"], cam["restarts"], cam["frames"]) == ("up", 2, 15)
    assert report["status"] == "ok", report["reasons"]


class Broken:
    """A camera worker that never starts: its source raises at once."""

    def __init__(self) -> None:
        self.stats = WorkerStats()

    def run(self, stop: threading.Event) -> None:
        raise OSError("/dev/video0: No such device")


def test_beyond_the_budget_the_camera_is_down_and_retried_slowly(
    tmp_path: Path, config: BoxConfig
) -> None:
    builds: list[float] = []

    def factory(camera: CameraConfig, on_points: PointSink, on_state: StateSink) -> Broken:
        builds.append(time.monotonic())
        return Broken()

    box = Box(config, tmp_path / "box.db", worker_factory=factory, policy=FAST)
    box.start()
    try:
        wait_for(lambda: len(builds) >= 6, 10, "three fast restarts and two slow retries")
        report = box.health.health_report()
        stored = events(box)
    finally:
        box.stop()
    cam = report["cameras"]["courtyard"]
    assert cam["state"] == "down" and cam["restart_budget_spent"] and cam["restarts"] >= 5
    assert "camera courtyard: restart budget spent, retrying slowly" in report["reasons"]
    gaps = [b - a for a, b in itertools.pairwise(builds)]
    assert min(gaps[3:5]) >= FAST.down_retry_s  # the 4th crash spent the budget: slow retries
    # one down event: a camera that is already down is not recorded down again
    assert stored == [("down", "worker crashed (restarting): OSError: /dev/video0: No such device")]


class FailingDetector:
    """The real detector, raising on its ``fail_at``-th frame (like a GPU fault)."""

    def __init__(self, inner: Detector, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.frames = 0

    def prepare(self, image: Any) -> Any:
        return self.inner.prepare(image)

    def detect(self, prepared: Any) -> Detections:
        self.frames += 1
        if self.frames == self.fail_at:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.detect(prepared)


@pytest.mark.slow
def test_real_camera_workers_on_the_real_video_survive_detector_faults(
    tmp_path: Path, config: BoxConfig
) -> None:
    assert isinstance(config.detector, OnnxDetectorConfig)
    detector = create_detector(config.detector.model_copy(update={"precision": "fp32"}))
    built: list[FailingDetector] = []

    def factory(camera: CameraConfig, on_points: PointSink, on_state: StateSink) -> CameraRunnable:
        det: Detector = detector
        if len(built) < 2:  # the first two workers fault on their 5th frame
            built.append(FailingDetector(detector, 5))
            det = built[-1]
        return build_worker(config, camera, det, on_points, on_state)

    box = Box(config, tmp_path / "box.db", worker_factory=factory, policy=FAST)
    box.start()
    try:

        def points() -> int:
            with closing(connect(box.db_path, readonly=True)) as conn:
                return count_track_points(conn)

        wait_for(lambda: points() > 20, 120, "points after two faults")
        box.tick()
        report = box.health.health_report()
        stored = events(box)
    finally:
        box.stop()
    assert [e[0] for e in stored] == ["up", "down", "up", "down", "up"]
    assert stored[1][1].startswith("worker crashed (restarting): RuntimeError: CUDA error")
    assert [d.frames for d in built] == [5, 5]
    assert report["cameras"]["courtyard"]["restarts"] == 2
    assert report["cameras"]["courtyard"]["frames"] > 8  # 4 + 4 + the healthy worker's


class Failing:
    """A service that crashes once, then runs until stopped."""

    name = "alerts"

    def __init__(self) -> None:
        self.runs = 0

    def run(self, stop: threading.Event) -> None:
        self.runs += 1
        if self.runs == 1:
            raise ValueError("rule table corrupt")
        stop.wait()


def test_a_crashed_service_is_restarted(tmp_path: Path, config: BoxConfig) -> None:
    service = Failing()
    box = Box(
        config,
        tmp_path / "box.db",
        services=[service],
        worker_factory=lambda cam, on_points, on_state: Flaky(cam.id, on_state, crashes=0),
        policy=FAST,
    )
    box.start()
    try:
        wait_for(lambda: service.runs == 2, 10, "the service's restart")
        report = box.health.health_report()
    finally:
        box.stop()
    assert report["services"]["alerts"] == {"state": "running", "restarts": 1, "detail": ""}
    assert box.supervisor.alive() == []
