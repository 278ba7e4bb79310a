"""Privacy, tested: a run of the real pipeline writes nothing to disk but its SQLite file.

The pipeline runs in a child process with its own HOME, TMPDIR and working directory
(``tests/privacy_child.py``), so nothing another process does on this machine can fail the
test. Three watchers, each able to catch what the others miss:

* the child's audit hook: every file Python opens for writing, anywhere;
* the parent polling ``/proc/<pid>/fd``: every file the process holds open for writing,
  from Python or from C (a library's database, a cache, a log), anywhere;
* a diff of the private folders before and after: every file that appeared there, however
  it was written (cv2 writing a JPEG from C is seen here).

The planted runs prove the watchers work: a frame written to disk makes the check fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.box.cameras import build_detector
from appliance.config import BoxConfig
from local_db import connect, count_track_points

from .conftest import REPO

pytestmark = pytest.mark.slow
FRAMES = 40
# What the child may hold open for writing besides its database: not files on disk.
NOT_FILES = ("pipe:", "socket:", "anon_inode:", "/dev/null", "/dev/urandom", "/dev/shm/")


@dataclass
class PrivateRun:
    """What one watched child run left behind."""

    db: Path
    opened_for_writing: list[str]
    held_for_writing: set[str]
    new_files: set[Path]
    frames: int
    stderr: str = ""
    findings: list[str] = field(default_factory=list)


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _held_for_writing(pid: int) -> set[str]:
    """Paths the process holds open with write access (from ``/proc/PID/fdinfo`` flags)."""
    held: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return held
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                flags = int(next(x for x in info if x.startswith("flags:")).split()[1], 8)
        except (OSError, StopIteration, ValueError):
            continue  # closed between listing and reading
        if flags & (os.O_WRONLY | os.O_RDWR) and not target.startswith(NOT_FILES):
            held.add(target)
    return held


def run_private(root: Path, plant: str | None = None) -> PrivateRun:
    """Run the child in private folders under ``root``; collect what each watcher saw."""
    home, tmp, work = (root / "home", root / "tmp", root / "work")
    for folder in (home, tmp, work):
        folder.mkdir(parents=True)
    db = work / "privacy.db"
    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "FOOTFALL_CACHE": os.environ.get("FOOTFALL_CACHE", str(Path.home() / ".cache/footfall")),
        "FOOTFALL_PLANT_PATH": str(root / "outside" / "frame.raw"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    (root / "outside").mkdir()
    before = {folder: _tree(folder) for folder in (home, tmp, work)}
    args = [sys.executable, "-m", "tests.privacy_child", str(db), str(FRAMES)]
    proc = subprocess.Popen(
        args + ([plant] if plant else []),
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    held: set[str] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.02):
            held.update(_held_for_writing(proc.pid))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out, err = proc.communicate(timeout=600)
    done.set()
    poller.join()
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out)
    new = set().union(*(_tree(folder) - before[folder] for folder in before))
    return PrivateRun(db, report["opened_for_writing"], held, new, report["frames"], err)


def privacy_findings(run: PrivateRun) -> list[str]:
    """Everything the run wrote that is not its SQLite database (empty: the run is private)."""
    sqlite_files = {str(run.db) + suffix for suffix in ("", "-wal", "-shm", "-journal")}
    findings = [f"opened for writing from Python: {p}" for p in run.opened_for_writing]
    findings += [f"held open for writing: {p}" for p in sorted(run.held_for_writing - sqlite_files)]
    findings += [f"new file: {p}" for p in sorted(map(str, run.new_files)) if p not in sqlite_files]
    return findings


@pytest.fixture(scope="module")
def prepared_model(example_config: BoxConfig, vtest: Path) -> None:
    """The INT8 model prepared in the asset cache before any watched run (a one-off)."""
    build_detector(example_config, str(vtest))


@pytest.mark.usefixtures("prepared_model")
def test_a_run_writes_nothing_but_sqlite_while_the_machine_is_busy(tmp_path: Path) -> None:
    stop = threading.Event()
    neighbour_files: list[Path] = []

    def neighbour() -> None:  # another process's files appearing in the shared /tmp meanwhile
        while not stop.wait(0.01):
            handle, name = tempfile.mkstemp(prefix="footfall-neighbour-", dir="/tmp")
            os.write(handle, b"not ours")
            os.close(handle)
            neighbour_files.append(Path(name))

    writer = threading.Thread(target=neighbour)
    writer.start()
    try:
        run = run_private(tmp_path)
    finally:
        stop.set()
        writer.join()
        for name in neighbour_files:
            name.unlink(missing_ok=True)
    assert len(neighbour_files) > 10  # /tmp really was busy during the run
    assert run.frames >= FRAMES
    assert privacy_findings(run) == []
    conn = connect(run.db, readonly=True)
    try:
        assert count_track_points(conn) > 50
        cols = [r[1] for r in conn.execute("PRAGMA table_info(track_points)")]
        assert cols == ["camera_id", "track_id", "t_ms", "x_m", "y_m", "conf"]
        tables = [r[0].lower() for r in conn.execute("SELECT name FROM sqlite_master")]
        assert not [t for t in tables if "frame" in t or "image" in t]
    finally:
        conn.close()


@pytest.mark.usefixtures("prepared_model")
def test_a_frame_written_by_cv2_into_tmp_is_caught(tmp_path: Path) -> None:
    findings = privacy_findings(run_private(tmp_path, plant="tmp-jpeg"))
    assert [f for f in findings if f.endswith("tmp/frame.jpg")], findings


@pytest.mark.usefixtures("prepared_model")
def test_a_frame_written_anywhere_from_python_is_caught(tmp_path: Path) -> None:
    findings = privacy_findings(run_private(tmp_path, plant="python-open"))
    planted = str(tmp_path / "outside" / "frame.raw")
    assert f"opened for writing from Python: {planted}" in findings, findings
