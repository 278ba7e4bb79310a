"""``footfall privacy-audit``: a clean box passes; each planted fault fails with a clear finding.

Everything is real: a config in a tmp folder, a migrated SQLite file filled through the
box's own writer (``local_db.DbWriter``) with the ids vision draws, images encoded by
OpenCV, the real dashboard on a free port, a tiny HTTP server that leaks a frame, the
repository's units scored by ``systemd-analyze``.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from ruamel.yaml import YAML

from appliance.box.privacy import check_protocol, looks_encoded, sniff
from appliance.cli import main
from local_db import DbWriter, connect
from local_db.schema import TABLES
from vision.tracking import random_track_id
from webui import create_app
from webui.ops import WebServer
from wire import TABLES as WIRE_TABLES

from .conftest import EXAMPLE_CONFIG, REPO, wait_for
from .test_doctor import tiny_model, tiny_video

HOUR_MS = 3_600_000
RETENTION_H = 36


@dataclass
class Box:
    """A store box laid out in a tmp folder."""

    root: Path
    config: Path
    db: Path
    cache: Path
    units: Path
    yaml: Any

    def save(self) -> None:
        with self.config.open("w") as f:
            YAML().dump(self.yaml, f)


def write_points(db: Path, ids: list[int], t_ms: int, camera: str = "courtyard") -> None:
    """A short track per id, through the box's writer thread."""
    with DbWriter(db) as writer:
        writer.submit_points(
            [
                (camera, tid, t_ms + i * 1000 + k * 100, 10.0 + k, 12.0, 0.8)
                for i, tid in enumerate(ids)
                for k in range(3)
            ]
        )


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Box]:
    """A clean box: config, data, a model cache, real track points; its dashboard is down."""
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    tiny_model(cache / "models" / "detector.onnx")  # the model cache's .onnx files are fine
    monkeypatch.setenv("FOOTFALL_CACHE", str(cache))
    etc = tmp_path / "etc"
    etc.mkdir()
    db = tmp_path / "data" / "box.db"
    db.parent.mkdir()
    yaml = YAML().load(EXAMPLE_CONFIG.read_text())
    yaml["storage"] = {"db_path": str(db), "track_retention_hours": RETENTION_H}
    # a port bound but not listening: the dashboard is certainly down (connection refused)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yaml["web"] = {"host": "127.0.0.1", "port": closed.getsockname()[1]}
        units = tmp_path / "units"  # no installed units: exposure is skipped
        units.mkdir()
        b = Box(tmp_path, etc / "store.yaml", db, cache, units, yaml)
        b.save()
        now = int(time.time() * 1000)
        write_points(db, [random_track_id() for _ in range(12)], now - HOUR_MS)
        write_points(db, [random_track_id() for _ in range(12)], now - HOUR_MS, "door")
        yield b


def audit(box: Box, *extra: str) -> tuple[int, dict[str, dict[str, str]], dict[str, Any]]:
    """Run the command with --json: exit code, checks by name, the manifest."""
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    argv = ["privacy-audit", "--config", str(box.config), "--units-dir", str(box.units)]
    with redirect_stdout(out):
        code = main([*argv, "--json", *extra])
    report = json.loads(out.getvalue())
    assert report["ok"] is (code == 0)
    return code, {c["name"]: c for c in report["checks"]}, report["manifest"]


def failed(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: c["reason"] for name, c in checks.items() if c["status"] == "fail"}


def jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((24, 32, 3), 128, np.uint8))
    assert ok
    return bytes(data)


def test_a_clean_box_passes(box: Box) -> None:
    code, checks, _ = audit(box)
    assert code == 0, failed(checks)
    assert {n: c["status"] for n, c in checks.items() if c["status"] not in ("ok", "skip")} == {}
    for name in ("database schema", "database values", "track ids", "retention", "sync"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "courtyard: 12" in checks["track ids"]["reason"]
    scanned = {n for n in checks if n.startswith("files ")}
    assert {f"files {(box.root / d).resolve()}" for d in ("data", "etc", "cache")} <= scanned
    (live,) = [c for n, c in checks.items() if n.startswith("live view ")]
    assert live["status"] == "skip" and "not running" in live["reason"]


@pytest.mark.parametrize(
    ("folder", "name", "kind"),
    [
        ("data", "readings.log", "JPEG"),
        ("etc", "store.yaml.bak", "PNG"),
        ("cache/models", "detector.onnx.part", "AVI video"),
    ],
)
def test_an_image_or_video_under_a_writable_folder_fails_naming_it(
    box: Box, folder: str, name: str, kind: str
) -> None:
    path = box.root / folder / name
    if kind == "AVI video":
        shutil.move(tiny_video(box.root / "clip.avi"), path)
    else:
        ok, data = cv2.imencode(".jpg" if kind == "JPEG" else ".png", np.zeros((8, 8), np.uint8))
        assert ok
        path.write_bytes(bytes(data))
    code, checks, _ = audit(box)
    assert code == 1
    root = f"files {(box.root / folder.split('/')[0]).resolve()}"
    assert list(failed(checks)) == [root]
    assert f"{path.resolve()} ({kind})" in failed(checks)[root]


def test_the_floor_plan_drawing_is_the_one_image_allowed(box: Box) -> None:
    ok, data = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    assert ok
    (box.config.parent / "plan.png").write_bytes(bytes(data))
    box.yaml["floor_plan"]["image"] = "plan.png"
    box.save()
    code, checks, _ = audit(box)
    assert code == 0, failed(checks)
    assert "but the floor plan drawing" in checks[f"files {box.config.parent.resolve()}"]["reason"]
    (box.config.parent / "photo.png").write_bytes(bytes(data))
    code, checks, _ = audit(box)
    assert code == 1 and "photo.png (PNG)" in str(failed(checks))


@pytest.mark.parametrize(
    ("sql", "check", "finding"),
    [
        (
            "ALTER TABLE camera_events ADD COLUMN payload BLOB",
            "database schema",
            "camera_events.payload (BLOB column)",
        ),
        (
            "ALTER TABLE alert_log ADD COLUMN frame_jpeg TEXT",
            "database schema",
            "alert_log.frame_jpeg (pixels)",
        ),
        (
            "INSERT INTO camera_events VALUES ('door', 1, 'down', ?)",
            "database values",
            "camera_events.detail: 1 blob value(s)",
        ),
        (
            "INSERT INTO web_settings VALUES ('last_frame', ?)",
            "database values",
            "web_settings.value: base64 JPEG",
        ),
        (
            "INSERT INTO web_settings VALUES ('raw', CAST(? AS TEXT))",
            "database values",
            "web_settings.value: raw JPEG bytes",
        ),
    ],
)
def test_frame_data_in_sqlite_fails(box: Box, sql: str, check: str, finding: str) -> None:
    value: object = jpeg()
    if "last_frame" in sql:
        value = base64.b64encode(jpeg()).decode()
    with closing(connect(box.db)) as conn:
        conn.execute(sql, (value,) if "?" in sql else ())
    code, checks, _ = audit(box)
    assert code == 1
    assert list(failed(checks)) == [check]
    assert finding in failed(checks)[check]


@pytest.mark.parametrize(
    ("ids", "finding"),
    [
        (list(range(1, 13)), "camera courtyard: 24 of 24 ids are small integers"),
        ([2**40 + i for i in range(12)], "camera courtyard: 24 ids move one way"),
    ],
)
def test_track_ids_that_count_fail(box: Box, ids: list[int], finding: str) -> None:
    with closing(connect(box.db)) as conn:
        conn.execute("DELETE FROM track_points WHERE camera_id = 'courtyard'")
    # 24 tracks, first seen in this order (the audit reads ids by first appearance)
    write_points(box.db, ids + [ids[-1] + i + 1 for i in range(12)], int(time.time() * 1000))
    code, checks, _ = audit(box)
    assert code == 1
    assert list(failed(checks)) == ["track ids"]
    assert finding in failed(checks)["track ids"]
    assert "door" not in failed(checks)["track ids"]  # the other camera's ids are random


def test_a_track_point_past_retention_fails_with_its_age(box: Box) -> None:
    now = int(time.time() * 1000)
    write_points(box.db, [random_track_id()], now - (RETENTION_H + 30) * HOUR_MS, "door")
    code, checks, _ = audit(box)
    assert code == 1
    assert list(failed(checks)) == ["retention"]
    reason = failed(checks)["retention"]
    assert re.search(r"camera door\) is (66\.0|66\.1) h old; retention 36 h", reason), reason


def test_a_point_the_nightly_maintenance_has_not_reached_yet_warns(box: Box) -> None:
    now = int(time.time() * 1000)
    write_points(box.db, [random_track_id()], now - (RETENTION_H + 2) * HOUR_MS)
    code, checks, _ = audit(box)
    assert code == 0
    assert checks["retention"]["status"] == "warn"
    assert "the nightly maintenance deletes it" in checks["retention"]["reason"]


@pytest.mark.parametrize(
    ("sql", "finding"),
    [
        ("ALTER TABLE agg_footfall ADD COLUMN track_id INTEGER", "agg_footfall.track_id (a track"),
        ("ALTER TABLE agg_queue ADD COLUMN image TEXT", "agg_queue.image (pixels)"),
        (
            "CREATE TABLE agg_paths (store_id TEXT, t_ms INTEGER, x_m REAL, y_m REAL)",
            "agg_paths.t_ms (a per-point time (a trajectory)), agg_paths.x_m",
        ),
    ],
)
def test_a_trajectory_or_pixel_field_in_a_synced_table_fails(
    box: Box, sql: str, finding: str
) -> None:
    with closing(connect(box.db)) as conn:
        conn.execute(sql)
    code, checks, manifest = audit(box)
    assert code == 1
    assert "sync" in failed(checks)
    assert finding in failed(checks)["sync"]
    table = sql.split()[2]
    assert table in manifest["leaves"]["aggregates"]["tables"]  # the manifest says it leaves


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_real_dashboard_refuses_the_live_frame_without_a_session(box: Box) -> None:
    app = create_app(box.config, box.db, frames=lambda _camera: jpeg())
    web, stop = WebServer(app, "127.0.0.1", 0), threading.Event()
    thread = threading.Thread(target=web.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(web.ready.is_set, 10, "the dashboard to listen")
        code, checks, _ = audit(box, "--url", f"http://127.0.0.1:{web.port}")
    finally:
        stop.set()
        thread.join(10)
    assert code == 0, failed(checks)
    (name,) = [n for n in checks if n.startswith("live view ")]
    assert name.endswith("/installer/cameras/courtyard/frame.jpg")  # webui's own route
    assert checks[name] == {"name": name, "status": "ok", "reason": "HTTP 302 to the sign-in page"}


def test_a_dashboard_that_serves_the_frame_to_anyone_fails(box: Box) -> None:
    frame = jpeg()

    class Leaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(frame)))
            self.end_headers()
            self.wfile.write(frame)

        def log_message(self, *args: object) -> None:
            pass

    server = _serve(Leaky)
    try:
        code, checks, _ = audit(box, "--url", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert code == 1
    (name,) = failed(checks)
    assert name.startswith("live view ") and name.endswith("/installer/cameras/courtyard/frame.jpg")
    assert failed(checks)[name] == "HTTP 200 without a session: serves JPEG"


def test_an_unreachable_dashboard_named_with_url_fails(box: Box) -> None:
    port = box.yaml["web"]["port"]  # nothing listens there (see the fixture)
    code, checks, _ = audit(box, "--url", f"http://127.0.0.1:{port}")
    assert code == 1
    (reason,) = failed(checks).values()
    assert "unreachable" in reason


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_units_exposure_scores(box: Box) -> None:
    for unit in ("footfall.service", "litestream.service"):
        shutil.copy(REPO / "systemd" / unit, box.units / unit)
    code, checks, _ = audit(box)
    assert code == 0, failed(checks)
    assert checks["exposure footfall.service"]["reason"].endswith(": 1.5 (at most 2.0)")
    weak = box.units / "footfall.service"
    hardening = r"^(CapabilityBoundingSet|SystemCallFilter|RestrictAddressFamilies|Protect\w+)=.*\n"
    weak.write_text(re.sub(hardening, "", weak.read_text(), flags=re.M))
    code, checks, _ = audit(box)
    assert code == 1
    assert list(failed(checks)) == ["exposure footfall.service"]
    assert re.search(r": \d+\.\d, above 2.0 \(e\.g\. ", failed(checks)["exposure footfall.service"])


def test_the_manifest_has_every_table_and_column_and_the_configs_retention(box: Box) -> None:
    with closing(sqlite3.connect(box.db)) as conn:
        schema = {
            t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
            for (t,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    markdown = box.root / "manifest.md"
    code, _, manifest = audit(box, "--manifest", str(markdown))
    assert code == 0
    stored = {t["table"]: [c["name"] for c in t["columns"]] for t in manifest["stored"]}
    assert stored == schema
    assert manifest["retention"]["track_points_hours"] == RETENTION_H
    text = markdown.read_text()
    for table, columns in schema.items():
        section = text.split(f"### `{table}`\n", 1)[1].split("###", 1)[0]
        assert all(f"| `{c}` |" in section for c in columns), table
    assert f"- Raw trajectories (`track_points`): {RETENTION_H} h." in text
    assert "Kept: 36 h (storage.track_retention_hours" in text
    assert "`alert.message`" in text and "`delivery_id`" in text  # the webhook's real body
    assert "| OK | sync |" in text


def test_every_table_and_column_the_migrations_create_is_described(box: Box) -> None:
    _, _, manifest = audit(box)
    undescribed = [
        f"{t['table']}.{c['name']}"
        for t in manifest["stored"]
        for c in t["columns"]
        if t["table"] not in TABLES or c["meaning"] == "not described"
    ]
    assert undescribed == [], "describe them in local_db/schema.py's TABLES"


def test_a_bad_config_is_exit_2_with_its_line(box: Box, capsys: pytest.CaptureFixture[str]) -> None:
    box.config.write_text(
        box.config.read_text().replace("track_retention_hours: 36", "track_retention_hours: -1")
    )
    code = main(["privacy-audit", "--config", str(box.config), "--units-dir", str(box.units)])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(box.config))}:\d+: storage.track_retention_hours: ", err), (
        err
    )


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".tiff", ".webp", ".ppm", ".pgm"])
def test_every_image_format_opencv_writes_is_told_by_its_bytes(ext: str) -> None:
    ok, data = cv2.imencode(ext, np.full((16, 16, 3) if ext != ".pgm" else (16, 16), 9, np.uint8))
    assert ok
    assert sniff(bytes(data)[:512]) is not None
    assert looks_encoded(base64.b64encode(bytes(data))) is not None


def test_text_that_is_not_an_image_is_not_taken_for_one() -> None:
    assert (
        looks_encoded(b'{"0": 3, "10": 5, "30": 1, "60": 0, "120": 0, "300": 0, "600": 0}') is None
    )
    assert looks_encoded(b"0123456789abcdef" * 4) is None  # a hex secret
    assert sniff(b"SQLite format 3\x00" + bytes(100)) is None


def test_a_trajectory_field_in_the_sync_protocol_fails() -> None:
    assert check_protocol().status == "ok"
    footfall = WIRE_TABLES["agg_footfall"]
    leaky = dataclasses.replace(
        footfall, values=(*footfall.values, dataclasses.replace(footfall.values[0], name="x_m"))
    )
    check = check_protocol([*WIRE_TABLES.values(), leaky])
    assert check.status == "fail"
    assert "agg_footfall.x_m" in check.reason
