"""The ``footfall`` commands as an operator runs them: real processes, real files."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from appliance.box.runtime import Box
from appliance.config import parse_config
from local_db import camera_events, connect, count_track_points
from vision.mot_format import read_mot

from .conftest import EXAMPLE_CONFIG, wait_for

MOTMETRICS_DATA = Path(str(__import__("motmetrics").__file__)).parent / "data"


def footfall(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def config_with(tmp_path: Path, source: str, *, loop: bool = False) -> Path:
    text = EXAMPLE_CONFIG.read_text()
    text = text.replace("source: asset:vtest.avi", f"source: {source}")
    text = text.replace("loop: true", f"loop: {'true' if loop else 'false'}")
    text = text.replace(
        "db_path: ~/.cache/footfall/demo/footfall.db", f"db_path: {tmp_path}/box.db"
    )
    path = tmp_path / "store.yaml"
    path.write_text(text)
    return path


def test_run_stops_cleanly_on_sigterm_and_flushes(tmp_path: Path, vtest: Path) -> None:
    cfg = config_with(tmp_path, str(vtest))
    db = tmp_path / "box.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def has_rows() -> bool:
            if not db.exists():
                return False
            conn = connect(db, readonly=True)
            try:
                return count_track_points(conn) > 20
            except sqlite3.OperationalError:  # the file exists, its migration is not committed
                return False
            finally:
                conn.close()

        wait_for(has_rows, 120, "track points from `footfall run`")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "signal SIGTERM: stopping" in err
    conn = connect(db, readonly=True)
    rows = conn.execute("SELECT count(*), max(t_ms) - min(t_ms) FROM track_points").fetchone()
    # realtime pacing: ~10 frames/s of wall time, timestamps on the wall clock
    assert rows[0] > 20 and 0 < rows[1] < 120_000
    # up while it ran, down from the moment it stopped (so coverage shows the gap)
    assert [(e[2], e[3]) for e in camera_events(conn)][-1] == ("down", "box stopped")
    assert [e[2] for e in camera_events(conn)] == ["up", "down"]
    conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def installer_session(base: str, token: str) -> urllib.request.OpenerDirector:
    """Redeem the box's one-time setup token over HTTP; returns the signed-in browser."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(f"{base}/setup", timeout=10) as r:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.read().decode())
    assert csrf, "the setup form carries a CSRF token"
    form = {"csrf_token": csrf.group(1), "token": token, "username": "ines",
            "password": "a long passphrase"}  # fmt: skip
    with opener.open(f"{base}/setup", urllib.parse.urlencode(form).encode(), timeout=10) as r:
        assert r.status == 200 and urllib.parse.urlsplit(r.url).path == "/"
    return opener


def test_run_under_systemd_serves_health_and_logs_json(tmp_path: Path, vtest: Path) -> None:
    cfg = config_with(tmp_path, str(vtest), loop=True)
    cfg.write_text(cfg.read_text() + "runtime: {disk_free_min_mb: 0}\n")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(120)
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="2000000")
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "run", "--config", str(cfg),
         "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        messages = [notify.recv(4096).decode()]
        assert messages[0].startswith("READY=1\nSTATUS=1 camera(s) starting")
        while "WATCHDOG=1" not in messages:  # every WatchdogSec / 2 = 1 s
            messages.append(notify.recv(4096).decode())

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    return bool(json.load(r)["status"] == "ok")
            except urllib.error.HTTPError as err:
                assert err.code == 503
                return False

        wait_for(healthy, 60, "/healthz to say ok")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            scrape = r.read().decode()
        assert 'footfall_camera_up{camera="courtyard"} 1.0' in scrape
        for service in ("scheduler", "alerts", "web"):
            assert f'footfall_service_up{{service="{service}"}} 1.0' in scrape
        assert proc.stdout is not None
        token = proc.stdout.readline().rsplit(": ", 1)[1].strip()
        installer = installer_session(f"http://127.0.0.1:{port}", token)
        frame_url = f"http://127.0.0.1:{port}/installer/cameras/courtyard/frame.jpg"

        def framed() -> bool:  # "up" can come a moment before the first frame is in RAM
            try:
                installer.open(frame_url, timeout=5).close()
            except urllib.error.HTTPError as err:
                assert err.code == 404, err
                return False
            return True

        wait_for(framed, 30, "the camera's first frame in the RAM ring buffer")
        with installer.open(frame_url, timeout=5) as r:
            assert r.headers["Content-Type"] == "image/jpeg"
            assert r.headers["Cache-Control"].startswith("no-store")
            assert r.read(2) == b"\xff\xd8"  # the live frame from the RAM ring buffer
        cfg.write_bytes(cfg.read_bytes() + b"# \xff\n")  # a bad byte: the alerts keep their rules

        def alerts_degraded() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
            except urllib.error.HTTPError as err:
                reasons = json.load(err)["reasons"]
                return any(r.startswith("service alerts: running") for r in reasons)
            return False

        wait_for(alerts_degraded, 30, "/healthz to say the alert engine kept its last rules")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        while "STOPPING=1" not in messages:
            messages.append(notify.recv(4096).decode())
    finally:
        proc.kill()
        notify.close()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    assert {
        "level": "INFO",
        "logger": "appliance.box.runtime",
        "msg": "signal SIGTERM: stopping",
    }.items() <= next(r for r in records if r["msg"].startswith("signal")).items()


def test_dead_source_marks_camera_down_and_recovers(tmp_path: Path, vtest: Path) -> None:
    missing = tmp_path / "camera.avi"
    config = parse_config(config_with(tmp_path, str(missing)).read_text())
    box = Box(config, tmp_path / "box.db")
    box.start()
    try:

        def states() -> list[str]:
            conn = connect(tmp_path / "box.db", readonly=True)
            try:
                return [e[2] for e in camera_events(conn)]
            finally:
                conn.close()

        box.writer.flush()
        wait_for(lambda: states() == ["down"], 20, "the camera to be marked down")
        assert box.cameras_running() == ["courtyard"], "worker must keep going"
        missing.symlink_to(vtest)  # the camera comes back
        wait_for(lambda: states() == ["down", "up"], 30, "the camera to come back up")

        def points() -> int:
            conn = connect(tmp_path / "box.db", readonly=True)
            try:
                return count_track_points(conn)
            finally:
                conn.close()

        wait_for(lambda: points() > 0, 60, "points after recovery")
    finally:
        box.stop()
    assert box.writer.last_error is None


def test_vision_writes_points_and_mot_output(tmp_path: Path, vtest: Path) -> None:
    db, mot = tmp_path / "new-folder" / "v.db", tmp_path / "mot.txt"  # as on a fresh box
    result = footfall(
        "vision", "--config", str(EXAMPLE_CONFIG), "--video", str(vtest), "--db", str(db),
        "--start-utc", "2026-11-25T10:00:00Z", "--max-frames", "40", "--mot-out", str(mot), "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "40 frames" in result.stdout
    conn = connect(db, readonly=True)
    t0 = conn.execute("SELECT min(t_ms) FROM track_points").fetchone()[0]
    n = count_track_points(conn)
    events = camera_events(conn)
    conn.close()
    assert t0 >= 1_764_064_800_000 and n > 50
    assert len(read_mot(mot)) == n  # one MOT box per stored floor point
    # the camera is up from the video's first frame, on the video's clock (not the wall
    # clock of the processing run), so the coverage of the points' buckets is right
    assert (events[0][1], events[0][2]) == (1_795_600_800_000, "up")  # 10:00:00Z


def test_bad_config_exits_2_naming_the_line(tmp_path: Path, vtest: Path) -> None:
    cfg = config_with(tmp_path, str(vtest))
    text = cfg.read_text().replace("  timezone: Europe/London", "  timezone: Europe/Lundon")
    cfg.write_text(text)
    line = text.splitlines().index("  timezone: Europe/Lundon") + 1
    for args in (("config", "check", str(cfg)), ("run", "--config", str(cfg))):
        result = footfall(*args)
        assert result.returncode == 2
        assert f"{cfg}:{line}: store.timezone:" in result.stderr


def test_eval_mot_on_the_files_py_motmetrics_ships() -> None:
    # reference values: py-motmetrics' own tests (motmetrics/tests/test_metrics.py)
    expected = {"TUD-Campus": (0.526462, 0.557659), "TUD-Stadtmitte": (0.564014, 0.644619)}
    for seq, (mota, idf1) in expected.items():
        result = footfall(
            "eval-mot", "--gt", str(MOTMETRICS_DATA / seq / "gt.txt"),
            "--result", str(MOTMETRICS_DATA / seq / "test.txt"), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        scores = json.loads(result.stdout)
        assert scores["mota"] == pytest.approx(mota, abs=1e-6)
        assert scores["idf1"] == pytest.approx(idf1, abs=1e-6)
        assert 0 < scores["hota"] < 1


def test_eval_mot_runs_our_tracker_on_a_video(tmp_path: Path, vtest: Path) -> None:
    gt = tmp_path / "gt.txt"
    made = footfall(
        "vision", "--config", str(EXAMPLE_CONFIG), "--video", str(vtest), "--db",
        str(tmp_path / "a.db"), "--max-frames", "30", "--mot-out", str(gt), "-q",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = footfall(
        "eval-mot", "--gt", str(gt), "--video", str(vtest), "--max-frames", "30", "--json"
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    # the same deterministic pipeline against its own output: ids differ (random), boxes match
    assert scores["mota"] == pytest.approx(1.0) and scores["idf1"] == pytest.approx(1.0)
    assert scores["num_pred_ids"] == scores["num_gt_ids"] > 3


def test_eval_mot_rejects_a_malformed_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,10,10,5,5,1,-1,-1,-1\n2,1,ten,10,5,5,1,-1,-1,-1\n")
    result = footfall("eval-mot", "--gt", str(bad), "--result", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2" in result.stderr


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "footfall"
    assert exe.exists()
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    for cmd in ("config", "vision", "run", "bench", "eval-mot"):
        assert cmd in out.stdout
    assert os.access(exe, os.X_OK)


@pytest.mark.peer
def test_bench_vision_json_has_the_documented_keys(vtest: Path) -> None:
    result = footfall("bench", "vision", "--frames", "12", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    keys = {"ours_fps", "peer_fps", "ratio", "ours_persons_per_frame", "peer_persons_per_frame"}
    assert keys | {"ours_tracks", "peer_tracks"} <= data.keys()
    assert [r["frames"] for r in data["runs"]] == [12, 12, 12]
    assert data["ratio"] == pytest.approx(data["ours_fps"] / data["peer_fps"], rel=0.02)
