"""sd_notify over a real Unix datagram socket, alone and from a running box."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.box.health import Health
from appliance.box.runtime import Box
from appliance.box.sdnotify import Notifier
from appliance.config import BoxConfig, CameraConfig, parse_config
from vision.worker import PointSink, StateSink, WorkerStats

from .conftest import EXAMPLE_CONFIG


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket where systemd would listen, and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield sock, str(path)
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket."""
    out = [sock.recv(4096).decode()]
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(10)


def test_messages_reach_a_path_socket(systemd: tuple[socket.socket, str]) -> None:
    sock, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("2 cameras\nstarting")
    assert sock.recv(4096) == b"READY=1\nSTATUS=2 cameras starting"
    assert notifier.watchdog() and notifier.status("ok") and notifier.stopping()
    assert [sock.recv(4096) for _ in range(3)] == [b"WATCHDOG=1", b"STATUS=ok", b"STOPPING=1"]


def test_abstract_namespace_socket() -> None:
    name = f"footfall-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(10)
        assert Notifier({"NOTIFY_SOCKET": f"@{name}"}).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_outside_systemd_or_with_systemd_gone_nothing_breaks(tmp_path: Path) -> None:
    assert not Notifier({}).enabled and not Notifier({}).ready()
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready()
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled


def test_watchdog_interval_is_half_of_watchdog_sec() -> None:
    pid = str(os.getpid())
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}).watchdog_interval_s == 15
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval_s == 15
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval_s is None
    assert Notifier({}).watchdog_interval_s is None


class Streaming:
    """A camera worker that reports up and one frame per ``frame`` event."""

    def __init__(self, camera_id: str, on_state: StateSink, frame: threading.Event) -> None:
        self.camera_id = camera_id
        self.stats = WorkerStats()
        self._on_state = on_state
        self._frame = frame

    def run(self, stop: threading.Event) -> WorkerStats:
        self._on_state(self.camera_id, 0, "up", "streaming")
        while not stop.is_set():
            if self._frame.wait(0.05):
                self._frame.clear()
                self.stats.frames += 1
        return self.stats


def test_the_box_pets_the_watchdog_only_while_no_camera_is_wedged(
    tmp_path: Path, systemd: tuple[socket.socket, str]
) -> None:
    sock, path = systemd
    config: BoxConfig = parse_config(
        EXAMPLE_CONFIG.read_text() + "runtime: {stall_s: 60, disk_free_min_mb: 0}\n"
    )
    mono = [1000.0]
    health = Health(config, tmp_path / "box.db", monotonic=lambda: mono[0])
    frame = threading.Event()

    def factory(camera: CameraConfig, on_points: PointSink, on_state: StateSink) -> Streaming:
        return Streaming(camera.id, on_state, frame)

    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1"})  # ping at every tick
    box = Box(config, tmp_path / "box.db", worker_factory=factory, health=health, notifier=notifier)
    box.start()
    try:
        assert received(sock) == ["READY=1\nSTATUS=1 camera(s) starting"]
        while health.health_report()["cameras"]["courtyard"]["state"] != "up":
            time.sleep(0.01)
        box.tick()
        assert received(sock) == ["WATCHDOG=1", "STATUS=1/1 camera(s) up; ok"]
        mono[0] += 61  # a minute without a frame from a camera that says it is up
        box.tick()
        status = "STATUS=1/1 camera(s) up; degraded: camera courtyard: up but no frame for 61 s"
        assert received(sock) == [status]  # no WATCHDOG=1: systemd will restart the box
        frame.set()
        while frame.is_set():  # until the worker has taken the frame
            time.sleep(0.01)
        box.tick()
        assert received(sock) == ["WATCHDOG=1", "STATUS=1/1 camera(s) up; ok"]
    finally:
        box.stop()
    assert received(sock) == ["STOPPING=1"]
