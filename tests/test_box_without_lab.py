"""A box is installed without the lab: it checks, serves and runs; the lab's commands say why not.

The child processes block ``import lab`` the way a box install lacks it (a meta-path finder
that raises ``ModuleNotFoundError`` for ``lab`` and ``lab.*``), so they fail loudly if any box
code path imports it. The wheels are built for real: the box's holds no lab, the lab's only it.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .conftest import EXAMPLE_CONFIG, REPO, wait_for

LAB_MISSING = (
    "footfall-lab is not installed: this is a box install; the lab comes with a dev checkout "
    "(`make venv`)"
)

BLOCK_LAB_AND_RUN_FOOTFALL = """
import sys


class NoLab:
    def find_spec(self, name, path=None, target=None):
        if name == "lab" or name.startswith("lab."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoLab())
from appliance.cli import main

sys.exit(main(sys.argv[1:]))
"""


def box_footfall(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """``footfall ARGS`` in a child process that cannot import the lab."""
    return subprocess.Popen(
        [sys.executable, "-c", BLOCK_LAB_AND_RUN_FOOTFALL, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def box_config(tmp_path: Path) -> Path:
    """The demo store on a camera that is not there (the box starts regardless), db in tmp."""
    text = EXAMPLE_CONFIG.read_text()
    text = text.replace("source: asset:vtest.avi", f"source: {tmp_path / 'no-camera.avi'}")
    text = text.replace(
        "db_path: ~/.cache/footfall/demo/footfall.db", f"db_path: {tmp_path / 'box.db'}"
    )
    path = tmp_path / "store.yaml"
    path.write_text(text)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)
    finally:
        proc.kill()


def test_config_check_passes_without_the_lab(tmp_path: Path) -> None:
    proc = box_footfall("config", "check", str(EXAMPLE_CONFIG), cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "OK (store vtest-demo, 1 camera(s))" in out


def test_web_serves_the_dashboard_without_the_lab(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    proc = box_footfall("web", "--config", str(cfg), "--host", "127.0.0.1", "--port", "0",
                        cwd=tmp_path)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("dashboard: http://"), line
        url = line.split(": ", 1)[1].strip()
        with urllib.request.urlopen(f"{url}/setup", timeout=10) as page:
            assert b"Set up this box" in page.read()
    finally:
        _, err = stop(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_run_starts_and_answers_healthz_without_the_lab(tmp_path: Path) -> None:
    cfg = box_config(tmp_path)
    port = free_port()
    proc = box_footfall("run", "--config", str(cfg), "--listen", f"127.0.0.1:{port}",
                        cwd=tmp_path)  # fmt: skip
    health: dict[str, object] = {}

    def answers() -> bool:
        assert proc.poll() is None, "footfall run ended before it served /healthz"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                health.update(json.load(r))
        except urllib.error.HTTPError as err:  # 503: degraded (its camera is not there)
            health.update(json.load(err))
        except OSError:  # not listening yet
            return False
        return True

    try:
        wait_for(answers, 120, "/healthz of `footfall run` without the lab")
    finally:
        _, err = stop(proc)
    assert health["status"] in ("ok", "degraded"), health
    assert proc.returncode == 0, err
    assert "signal SIGTERM: stopping" in err
    assert "Traceback" not in err


def test_the_lab_commands_exit_2_with_one_clear_line(tmp_path: Path) -> None:
    scenario = str(REPO / "examples" / "sim" / "corner_shop" / "scenario.yaml")
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,10,5,5,1,-1,-1,-1\n")
    commands = [
        ["demo", "--dir", str(tmp_path / "demo"), "--port", "0"],
        ["bench", "vision"],
        ["bench", "analytics"],
        ["bench", "webui"],
        ["alerts", "bench"],
        ["accuracy"],
        ["simulate", "--scenario", scenario, "--out", str(tmp_path / "sim")],
        ["replay", "--scenario", scenario, "--db", str(tmp_path / "replay.db")],
        ["eval-mot", "--gt", str(gt), "--result", str(gt)],
    ]
    procs = [box_footfall(*argv, cwd=tmp_path) for argv in commands]
    for argv, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == (2, LAB_MISSING + "\n"), argv
        assert out == "", argv
    # nothing was written on the way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.txt"]


def _wheel_names(source: Path, out: Path) -> set[str]:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return {name for name in zf.namelist() if ".dist-info/" not in name}


def test_the_box_wheel_holds_no_lab_and_the_lab_wheel_only_the_lab(tmp_path: Path) -> None:
    # a copy of the checkout's sources, so that the builds write nothing into it
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "*.db*"
    )
    shutil.copytree(REPO, checkout, ignore=ignore)
    lab_sources = {p.relative_to(checkout).as_posix() for p in (checkout / "lab").rglob("*.py")}
    box = _wheel_names(checkout, tmp_path / "box")
    tops = {name.split("/", 1)[0] for name in box}
    assert tops == {"appliance", "vision", "local_db", "webui", "sync", "cloud_hub", "wire"}, tops
    assert "vision/mot_format.py" in box and "appliance/cli/__init__.py" in box
    hub = {"cloud_hub/migrations/env.py", "cloud_hub/migrations/versions/v0001_initial.py",
           "cloud_hub/migrations/script.py.mako", "wire/py.typed"}  # fmt: skip
    assert hub <= box, "the hub's migrations ship in the wheel"
    lab = _wheel_names(checkout / "lab", tmp_path / "lab")
    assert {name.split("/", 1)[0] for name in lab} == {"lab"}
    assert lab_sources <= lab, "every lab module is in its wheel"
    assert {"lab/py.typed", "lab/sim/engine.py", "lab/bench/vision.py"} <= lab
