"""No camera password or token in any page, event or log line; no path or URL on ``/healthz``."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from appliance.box.cameras import build_worker
from appliance.box.health import Health
from appliance.box.logs import log_handler
from appliance.box.runtime import Box, CameraRunnable
from appliance.box.supervisor import RestartPolicy
from appliance.config import BoxConfig, CameraConfig, load_config
from local_db import DbWriter, camera_events, connect
from vision.redaction import redact
from vision.types import Detections
from vision.worker import PointSink, StateSink
from webui.ops import ops_blueprint

from .conftest import EXAMPLE_CONFIG, REPO, wait_for
from .webui_support import make_app, sign_in

SECRET = "S3cretPass"
FAST = RestartPolicy(max_restarts=3, window_s=600, backoff_initial_s=0.05, backoff_max_s=0.05)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot open 'rtsp://admin:S3cretPass@10.0.0.7:554/stream1'",
            "cannot open 'rtsp://***@10.0.0.7:554/stream1'",
        ),
        ("rtsp://admin:p@ss@cam/s", "rtsp://***@cam/s"),  # an unescaped @ in the password
        ("http://cam/x.mjpg?user=a&token=abc123&n=1", "http://cam/x.mjpg?user=a&token=***&n=1"),
        (
            "https://h/p?X-Amz-Signature=dead&X-Amz-Credential=AK/1&api_key=k",
            "https://h/p?X-Amz-Signature=***&X-Amz-Credential=***&api_key=***",
        ),
        ("password=hunter2 secret=s sig=x key=y", "password=*** secret=*** sig=*** key=***"),
        ("camera courtyard: down (usb: unplugged)", "camera courtyard: down (usb: unplugged)"),
        ("hub secret whsec_MfKQ9r8GKYqrTwjUPD8I+/z= leaked", "hub secret whsec_*** leaked"),
    ],
)
def test_redact_masks_userinfo_and_secret_parameters(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


def test_redact_locations_hides_every_url_and_path() -> None:
    text = "cannot open 'rtsp://a:b@cam/s'; video file not found: /srv/v.mp4, ~/x.avi; 1/2"
    assert redact(text, locations=True) == (
        "cannot open '<url>'; video file not found: <path>, <path>; 1/2"
    )


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NoFrames:
    """A detector for a camera that never opens: no frame may reach it."""

    def prepare(self, image: Any) -> Any:
        raise AssertionError("the unreachable camera delivered a frame")

    def detect(self, prepared: Any) -> Detections:
        raise AssertionError("the unreachable camera delivered a frame")


@pytest.fixture
def rtsp_config(tmp_path: Path) -> Path:
    url = f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/stream1"
    text = EXAMPLE_CONFIG.read_text().replace("source: asset:vtest.avi", f"source: {url}")
    assert url in text
    path = tmp_path / "store.yaml"
    path.write_text(text + "runtime: {disk_free_min_mb: 0}\n")
    return path


def test_an_unreachable_camera_leaks_its_password_nowhere(
    tmp_path: Path, rtsp_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(rtsp_config)
    db = tmp_path / "box.db"

    def factory(camera: CameraConfig, on_points: PointSink, on_state: StateSink) -> CameraRunnable:
        return build_worker(
            config, camera, NoFrames(), on_points, on_state, retry_backoff=(0.05, 0.05)
        )

    box = Box(config, db, worker_factory=factory, policy=FAST)
    app = make_app(tmp_path, rtsp_config, blueprints=[ops_blueprint(box.health)])
    app.extensions["footfall_health"] = box.health
    json_log = io.StringIO()
    handler = log_handler("json", json_log)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.INFO)
    box.start()
    try:

        def stored() -> list[tuple[str, int, str, str]]:
            with closing(connect(db, readonly=True)) as conn:
                return camera_events(conn)

        wait_for(lambda: stored() and caplog.text.count("source down") >= 1, 20, "camera down")
        box.tick()
        client = app.test_client()
        healthz = client.get("/healthz")
        assert sign_in(client, "staff") == 302
        page = client.get("/health").get_data(as_text=True)
        events = stored()
    finally:
        box.stop()
        root.removeHandler(handler)
    body = healthz.get_data(as_text=True)
    assert healthz.status_code == 503
    assert json.loads(body)["reasons"] == ["camera courtyard: down (cannot open '<url>')"]
    assert "rtsp://" not in body and str(tmp_path) not in body  # no URL, no database path
    assert [(e[0], e[2]) for e in events] == [("courtyard", "down")]
    assert events[0][3].startswith("cannot open 'rtsp://***@127.0.0.1:")
    assert "rtsp://***@127.0.0.1:" in page  # staff still see which camera URL fails
    logged = json_log.getvalue()
    assert "cannot open 'rtsp://***@127.0.0.1:" in logged and "cannot open" in caplog.text
    for where, text in [
        ("/healthz", body),
        ("camera_events", repr(events)),
        ("/health", page),
        ("caplog", caplog.text),
        ("caplog messages", repr([r.getMessage() for r in caplog.records])),
        ("json log", logged),
    ]:
        assert SECRET not in text, where


def test_a_crash_quoting_the_url_is_stored_and_shown_redacted(
    tmp_path: Path, rtsp_config: Path
) -> None:
    config: BoxConfig = load_config(rtsp_config)
    url = config.cameras[0].source
    db = tmp_path / "box.db"
    health = Health(config, db)
    with DbWriter(db) as writer:
        # what the runtime does with a worker crash whose error quotes the URL
        detail = f"worker crashed (restarting): OSError: lost {url}?token=t0k3n"
        if health.set_camera_state("courtyard", 1_000, "down", detail):
            writer.submit_camera_state("courtyard", 1_000, "down", detail)
        health.service_state("sync", "restarting", f"ConnectionError: {url}")
        health.job_finished("backup", ok=False, error=f"OSError: {url}")
    with closing(connect(db, readonly=True)) as conn:
        stored = camera_events(conn)
    assert stored == [
        (
            "courtyard",
            1_000,
            "down",
            detail.replace(f"admin:{SECRET}", "***").replace("t0k3n", "***"),
        )
    ]
    full = json.dumps(health.health_report())
    public = json.dumps(health.public_report())
    assert SECRET not in full and "t0k3n" not in full and "rtsp://***@" in full
    assert SECRET not in public and "rtsp://" not in public and str(db) not in public
    assert str(db) in full  # the staff's report keeps the path


def test_old_events_holding_a_password_are_redacted_on_the_health_page(
    tmp_path: Path, rtsp_config: Path
) -> None:
    app = make_app(tmp_path, rtsp_config)
    with closing(connect(tmp_path / "box.db")) as conn:  # stored by a box before redaction
        conn.execute(
            "INSERT INTO camera_events (camera_id, t_ms, state, detail) VALUES (?, ?, ?, ?)",
            ("courtyard", 1_000, "down", f"cannot open 'rtsp://admin:{SECRET}@cam/s'"),
        )
    client = app.test_client()
    assert sign_in(client, "staff") == 302
    page = client.get("/health").get_data(as_text=True)
    assert "cannot open &#39;rtsp://***@cam/s&#39;" in page and SECRET not in page


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_box_log_setup_redacts_any_record(fmt: str) -> None:
    """Any logger, any argument, any traceback: the box's handler writes it redacted."""
    code = f"""
import logging
from appliance.box.logs import setup_logging
setup_logging(logging.INFO, {fmt!r})
log = logging.getLogger("some.library")
url = "rtsp://admin:{SECRET}@cam/stream1"
log.warning("opening %s", url)
log.info("token=abc{SECRET}")
try:
    raise OSError(f"cannot reach {{url}}")
except OSError:
    log.exception("connect failed")
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert SECRET not in done.stderr
    assert "opening rtsp://***@cam/stream1" in done.stderr
    assert "token=***" in done.stderr
    assert "OSError: cannot reach rtsp://***@cam/stream1" in done.stderr  # the traceback
    if fmt == "json":
        lines = [json.loads(line) for line in done.stderr.splitlines()]
        assert [line["msg"] for line in lines] == [
            "opening rtsp://***@cam/stream1", "token=***", "connect failed",
        ]  # fmt: skip
