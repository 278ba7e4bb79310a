"""Helpers for the update tests: a TUF repository served over real HTTP, tiny test wheels
whose package plays the box (a real ``/healthz`` process, healthy or not), and the restart
command that starts it from ``releases/current``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import socket
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from appliance.update import Settings
from cloud_hub.releases import Repository, blueprint
from lab.pgserver import free_port

PROBE_MAIN = """
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from footprobe import MODE, VERSION

if MODE == "crash":  # starts, then dies during the gate
    time.sleep(0.3)
    sys.exit(3)
frames = 0

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        global frames
        frames += 25
        ok = MODE == "healthy"
        body = json.dumps({"status": "ok" if ok else "degraded", "version": VERSION,
                           "reasons": [] if ok else ["camera c1: no frames yet"],
                           "cameras": {"c1": {"frames": frames if ok else 0}}}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PROBE_PORT"])), Health).serve_forever()
"""

RESTART = """
import os, signal, socket, subprocess, sys, time
from pathlib import Path
releases, port, pidfile = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
if pidfile.exists():
    try:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    except ProcessLookupError:
        pass
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.02)
env = dict(os.environ, PYTHONPATH=str((releases / "current").resolve()), PROBE_PORT=str(port))
child = subprocess.Popen([sys.executable, "-m", "footprobe"], env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
pidfile.write_text(str(child.pid))
"""


def build_wheel(folder: Path, version: str, mode: str = "healthy") -> Path:
    """A tiny pure wheel ``footfall-<version>`` whose ``footprobe`` plays the box."""
    files = {
        "footprobe/__init__.py": f"VERSION = {version!r}\nMODE = {mode!r}\n".encode(),
        "footprobe/__main__.py": textwrap.dedent(PROBE_MAIN).encode(),
        f"footfall-{version}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: footfall\nVersion: {version}\n".encode(),
        f"footfall-{version}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }  # fmt: skip
    record = []
    path = folder / f"footfall-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as whl:
        for name, data in files.items():
            whl.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append(f"footfall-{version}.dist-info/RECORD,,")
        whl.writestr(f"footfall-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@dataclass
class ReleaseHub:
    """A TUF repository served over HTTP, its root key, and where the box keeps its files."""

    repo: Repository
    root_key: Path
    url: str
    work: Path

    @property
    def trust_root(self) -> Path:
        """The root the box is shipped with."""
        return self.repo.metadata_dir / "1.root.json"

    def publish(self, version: str, mode: str = "healthy", channel: str = "stable") -> Path:
        """Build and publish a test release; its wheel."""
        wheel = build_wheel(self.work / "wheels" / mode, version, mode)
        model = self.work / "wheels" / f"model-{version}.onnx"
        model.write_bytes(f"weights of {version}".encode())
        self.repo.publish(channel, version, wheel, [model])
        return wheel


def serve_app(app: Flask) -> tuple[BaseWSGIServer, str]:
    """Serve a Flask app on a free port in a thread; the server and its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def release_hub(tmp_path: Path) -> Iterator[ReleaseHub]:
    """A fresh repository served by a real HTTP server (the hub's blueprint)."""
    repo = Repository.init(tmp_path / "repo", [tmp_path / "offline" / "root.pem"])
    app = Flask(__name__)
    app.register_blueprint(blueprint(repo.folder))
    server, url = serve_app(app)
    yield ReleaseHub(repo, tmp_path / "offline" / "root.pem", url, tmp_path)
    server.shutdown()


@dataclass
class Box:
    """The box's releases folder, its health port and the process playing it."""

    settings: Settings
    port: int
    pidfile: Path

    def healthz(self) -> dict[str, object]:
        """The running process's health report."""
        report: dict[str, object] = requests.get(self.settings.health_url, timeout=5).json()
        return report

    def wait_healthy(self, version: str, timeout: float = 20) -> None:
        """Wait until ``version`` answers healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.healthz().get("version") == version:
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"{version} never answered on {self.settings.health_url}")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    """A box's releases folder whose restart command starts ``current``'s probe."""
    script = tmp_path / "restart.py"
    script.write_text(RESTART)
    port, pidfile, releases = free_port(), tmp_path / "probe.pid", tmp_path / "releases"
    settings = Settings(
        releases=releases,
        health_url=f"http://127.0.0.1:{port}/healthz",
        restart=(sys.executable, str(script), str(releases), str(port), str(pidfile)),
        gate_s=8.0,
        poll_s=0.1,
    )
    yield Box(settings, port, pidfile)
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def port_closed(port: int) -> bool:
    """Nothing listens on the port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0
