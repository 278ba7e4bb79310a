"""A backup killed mid-write leaves its temporary copy; the next backup removes it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

from appliance.box.runtime import Box
from appliance.config import parse_config
from local_db import connect, migrate
from local_db.backup import backup, remove_stale_temps
from vision.worker import WorkerStats

from .conftest import EXAMPLE_CONFIG, REPO

# the child backs up, and is killed (SIGKILL) once the copy is written, before the rename
KILLED_BACKUP = """
import os, signal, sys
from pathlib import Path
import local_db.backup as b
copy = b._copy_database
def copy_then_die(src, target):
    copy(src, target)
    os.kill(os.getpid(), signal.SIGKILL)
b._copy_database = copy_then_die
b.backup(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def make_db(path: Path) -> Path:
    with closing(connect(path)) as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO track_points VALUES ('courtyard', 1, 1795600800000, 1.0, 2.0, 0.9)"
        )
    return path


def python(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env)


def test_the_next_backup_removes_what_a_killed_one_left(tmp_path: Path) -> None:
    db = make_db(tmp_path / "box.db")
    folder = tmp_path / "backups"
    folder.mkdir()
    child = python(KILLED_BACKUP, str(db), str(folder))
    assert child.wait(60) == -9
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 1 and left[0].startswith(f".footfall-backup-{child.pid}-")
    assert left[0].endswith(".tmp") and (folder / left[0]).stat().st_size > 0
    out = backup(db, folder)
    assert sorted(folder.iterdir()) == [out]  # the stale copy is gone, the new backup is there


def test_a_live_backups_temporary_copy_is_kept(tmp_path: Path) -> None:
    sleeper = python("import time; time.sleep(60)")
    try:
        in_flight = tmp_path / f".footfall-backup-{sleeper.pid}-abc123.tmp"
        own = tmp_path / f".footfall-restore-{os.getpid()}-def456.tmp"
        other = tmp_path / ".box.db.tmp"  # not ours: never touched
        for p in (in_flight, own, other):
            p.write_bytes(b"x")
        assert remove_stale_temps(tmp_path) == []
    finally:
        sleeper.kill()
        sleeper.wait(10)
    journal = tmp_path / f"{in_flight.name}-journal"
    journal.write_bytes(b"j")
    assert remove_stale_temps(tmp_path) == [in_flight]  # its process is gone now
    assert sorted(tmp_path.iterdir()) == sorted([own, other])


class Idle:
    """A camera worker that waits for the stop (the box under test needs no frames)."""

    stats = WorkerStats()

    def run(self, stop: threading.Event) -> WorkerStats:
        stop.wait()
        return self.stats


def test_the_box_removes_what_a_killed_restore_left_when_it_starts(tmp_path: Path) -> None:
    dead = python("pass")
    assert dead.wait(60) == 0
    stale = tmp_path / f".footfall-restore-{dead.pid}-abc123.tmp"
    stale.write_bytes(b"half a database")
    config = parse_config(EXAMPLE_CONFIG.read_text() + "runtime: {disk_free_min_mb: 0}\n")
    box = Box(config, tmp_path / "box.db", worker_factory=lambda *_: Idle())
    box.start()
    box.stop()
    assert not stale.exists()
    assert (tmp_path / "box.db").exists()
