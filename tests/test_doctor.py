"""``footfall doctor``: each failure simulated for real, the table, --json and the exit code."""

from __future__ import annotations

import http.server
import json
import socket
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from ruamel.yaml import YAML

from appliance.box.doctor import check_litestream
from appliance.cli import main
from local_db import connect, migrate
from local_db.litestream import find_binary, litestream_config
from local_db.migrations import MIGRATIONS

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def synced_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `timedatectl` on PATH that says what the test wants (default: synchronised)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    set_clock(bin_dir, "yes")
    return bin_dir


def set_clock(bin_dir: Path, value: str) -> None:
    exe = bin_dir / "timedatectl"
    exe.write_text(f"#!/bin/sh\necho {value}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def tiny_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    return path


def tiny_model(path: Path) -> Path:
    """A real (one-node) ONNX model: ONNX Runtime loads it in milliseconds."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.fixture
def box(tmp_path: Path, synced_clock: Path) -> dict[str, Any]:
    """A healthy box in tmp_path: config, a video camera, a model, a migrated database."""
    yaml = YAML()
    config = yaml.load((REPO / "examples" / "vtest.yaml").read_text())
    config["cameras"][0]["source"] = str(tiny_video(tmp_path / "cam.avi"))
    config["detector"]["model"] = str(tiny_model(tmp_path / "model.onnx"))
    config["detector"]["precision"] = "fp32"
    db = tmp_path / "data" / "box.db"
    db.parent.mkdir()
    config["storage"] = {"db_path": str(db)}
    with closing(connect(db)) as conn:
        migrate(conn)
        conn.executemany(
            "INSERT INTO track_points VALUES ('c', ?, ?, 1.0, 2.0, 0.9)",
            [(i, i * 100) for i in range(5000)],
        )
    path = tmp_path / "store.yaml"
    with path.open("w") as f:
        yaml.dump(config, f)
    return {"config": path, "yaml": config, "db": db, "tmp": tmp_path}


def doctor(
    box: dict[str, Any], *extra: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, dict[str, str]]]:
    argv = ["doctor", "--config", str(box["config"]), "--disk-min-mb", "1", "--json"]
    argv += ["--litestream-config", str(box["tmp"] / "no-litestream.yml"), *extra]
    code = main(argv)
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is (code == 0)
    return code, checks


def rewrite(box: dict[str, Any], **changes: Any) -> None:
    for dotted, value in changes.items():
        node = box["yaml"]
        *parents, key = dotted.split("__")
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[key] = value
    with box["config"].open("w") as f:
        YAML().dump(box["yaml"], f)


@pytest.fixture
def hub_server() -> Iterator[tuple[str, list[int]]]:
    """A real HTTP server on a free port; its /healthz answers with the status in the list."""
    answer = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = answer[0] if self.path == "/healthz" else 404
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answer
    finally:
        server.shutdown()
        server.server_close()


def test_a_healthy_box_passes_with_a_reachable_hub(
    box: dict[str, Any], hub_server: tuple[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, checks = doctor(box, "--hub", hub_server[0], capsys=capsys)
    assert code == 0, checks
    for name in ("config", "camera courtyard", "model", "gpu", "disk", "database", "hub", "clock"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["camera courtyard"]["reason"].startswith("64x48 frame in")
    assert checks["gpu"]["reason"] == "not used (onnx on the CPU)"
    assert f"integrity ok, {len(MIGRATIONS)} migrations current" in checks["database"]["reason"]
    assert checks["hub"]["reason"].startswith(f"{hub_server[0]}/healthz: HTTP 200 in")
    assert checks["litestream"]["status"] == "skip"
    assert checks["units"]["status"] == "skip"


def test_the_table_is_aligned_and_warnings_fail_only_with_strict(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["doctor", "--config", str(box["config"]), "--disk-min-mb", "1"]
    assert main(argv) == 0  # the hub is not configured: a warning
    lines = capsys.readouterr().out.splitlines()
    rows = [(line[:5].rstrip(), line[6:].split("  ")[0].rstrip()) for line in lines]
    width = max(len(name) for _, name in rows)
    assert all(status in {"OK", "WARN", "FAIL", "SKIP"} for status, _ in rows), lines
    # every reason starts in the same column, after the longest check name
    assert {line[6 + width : 8 + width] for line in lines} == {"  "}
    assert all(line[8 + width] != " " for line in lines), lines
    hub = next(line for line in lines if line[6:].startswith("hub "))
    assert hub.startswith("WARN ") and "not configured" in hub
    assert main([*argv, "--strict"]) == 1


def test_a_bad_config_names_its_line_and_key(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    text = box["config"].read_text().replace("fps: 10", "fps: -3")
    box["config"].write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "fps: -3" in t)
    code, checks = doctor(box, capsys=capsys)
    assert code == 1
    assert checks["config"]["status"] == "fail"
    assert checks["config"]["reason"] == (
        f"{box['config']}:{line}: cameras.0.fps: Input should be greater than 0"
    )
    assert checks["model"]["status"] == "skip"
    assert checks["database"]["reason"] == "no valid config"


def test_a_camera_file_that_does_not_exist_fails(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite(box, cameras__0__source=str(box["tmp"] / "gone.avi"))
    code, checks = doctor(box, capsys=capsys)
    assert code == 1
    assert checks["camera courtyard"]["status"] == "fail"
    assert "video file not found" in checks["camera courtyard"]["reason"]


def test_a_camera_whose_port_refuses_fails_within_the_timeout(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite(box, cameras__0__source=f"rtsp://user:secret@127.0.0.1:{free_port()}/stream")
    t0 = time.monotonic()
    code, checks = doctor(box, "--camera-timeout-s", "8", capsys=capsys)
    assert time.monotonic() - t0 < 8 + 5
    assert code == 1
    camera = checks["camera courtyard"]
    assert camera["status"] == "fail"
    assert "cannot open" in camera["reason"] or "no frame within 8 s" in camera["reason"]
    assert "secret" not in camera["reason"]  # redacted


def test_a_missing_model_file_fails(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    (box["tmp"] / "model.onnx").unlink()
    code, checks = doctor(box, capsys=capsys)
    assert code == 1
    assert checks["model"]["status"] == "fail"
    assert checks["model"]["reason"] == f"model file not found: {box['tmp'] / 'model.onnx'}"


def test_a_model_file_onnx_runtime_cannot_load_fails(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    (box["tmp"] / "model.onnx").write_bytes(b"\x08\x07not a protobuf" * 100)
    code, checks = doctor(box, capsys=capsys)
    assert code == 1
    assert checks["model"]["status"] == "fail"
    assert "ONNX Runtime cannot load it" in checks["model"]["reason"]


def test_a_corrupt_database_fails_its_integrity_check(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db: Path = box["db"]
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    assert pages > 10
    with db.open("r+b") as f:  # garbage over the pages after the schema's
        f.seek(page * (pages // 2))
        f.write(np.random.default_rng(1).bytes(page * 4))
    code, checks = doctor(box, capsys=capsys)
    assert code == 1
    assert checks["database"]["status"] == "fail"
    reason = checks["database"]["reason"]
    assert reason.startswith(f"{db}: ")
    assert "integrity_check" in reason or "malformed" in reason, reason


def test_a_file_that_is_no_database_fails(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    box["db"].write_bytes(b"garbage" * 1000)
    code, checks = doctor(box, capsys=capsys)
    assert code == 1
    assert checks["database"]["reason"] == f"{box['db']}: DatabaseError: file is not a database"


def test_pending_migrations_warn(box: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with closing(connect(box["db"])) as conn:
        conn.execute("DELETE FROM _migrations WHERE name = '0006_web_sessions'")
    code, checks = doctor(box, capsys=capsys)
    assert code == 0
    assert checks["database"]["status"] == "warn"
    assert "1 migration(s) pending: 0006_web_sessions" in checks["database"]["reason"]


def test_free_space_below_the_threshold_fails(
    box: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    free_mb = shutil.disk_usage(box["db"].parent).free >> 20
    code, checks = doctor(box, "--disk-min-mb", str(free_mb + 1024), capsys=capsys)
    assert code == 1
    assert checks["disk"]["status"] == "fail"
    assert checks["disk"]["reason"].endswith(f", below {free_mb + 1024} MiB")
    code, checks = doctor(box, "--disk-min-mb", str(free_mb // 2 + 1), capsys=capsys)
    assert checks["disk"]["status"] == "warn"


def test_an_unreachable_hub_fails(box: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, checks = doctor(box, "--hub", url, capsys=capsys)
    assert code == 1
    assert checks["hub"]["status"] == "fail"
    assert checks["hub"]["reason"].startswith(f"{url}/healthz: unreachable: ")
    assert "refused" in checks["hub"]["reason"]


def test_a_hub_answering_an_error_fails(
    box: dict[str, Any], hub_server: tuple[str, list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    hub_server[1][0] = 503
    code, checks = doctor(box, "--hub", hub_server[0], capsys=capsys)
    assert code == 1
    assert checks["hub"]["reason"].startswith(f"{hub_server[0]}/healthz: HTTP 503")


def test_an_unsynchronised_clock_fails(
    box: dict[str, Any], synced_clock: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_clock(synced_clock, "no")
    code, checks = doctor(box, capsys=capsys)
    assert code == 1
    assert checks["clock"] == {
        "name": "clock",
        "status": "fail",
        "reason": "not synchronised (timedatectl: NTPSynchronized=no)",
    }


def test_bad_options_exit_2(box: dict[str, Any]) -> None:
    assert main(["doctor", "--config", str(box["config"]), "--camera-timeout-s", "0"]) == 2
    assert main(["doctor", "--config", str(box["config"]), "--disk-min-mb", "-5"]) == 2


def test_litestream_never_replicated_fails_then_replicating_passes(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with closing(connect(db)) as conn:
        migrate(conn)
    config = tmp_path / "litestream.yml"
    config.write_text(litestream_config(db, f"file://{tmp_path / 'replica'}", sync_interval_s=1))
    check = check_litestream(config)
    assert (check.status, check.reason) == (
        "fail",
        f"{db}: the replica holds nothing yet (not replicating)",
    )
    proc = subprocess.Popen(
        [str(find_binary()), "replicate", "-config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not list((tmp_path / "replica").rglob("*.ltx")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    check = check_litestream(config)
    assert check.status == "ok", check
    assert check.reason.startswith(f"{db}: newest replica file ")
