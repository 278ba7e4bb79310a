"""A database that stops taking writes is reported as a failure with what was kept, never success.

The full disk is real: the replay runs in a child process whose file-size limit
(``RLIMIT_FSIZE``, no root needed) stops SQLite from growing its files. The kernel
then fails the write with ``EFBIG`` instead of a full partition's ``ENOSPC``, so
SQLite says ``disk I/O error`` where a full partition gives ``database or disk is
full``; the writer, the replay and the command go through the same failure path.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from lab.replay import ReplayError, SimReplay, simulate_scenario
from local_db import DbWriter, connect, count_track_points

from .conftest import REPO

pytestmark = pytest.mark.sim

CORNER = REPO / "examples" / "sim" / "corner_shop" / "scenario.yaml"
FILE_LIMIT = 320 << 10  # bytes any one file may grow to: room for the schema, not the replay


def small_disk() -> None:
    """In the child: no file may grow past FILE_LIMIT; writes past it fail (EFBIG)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_replay_onto_a_full_disk_exits_1_with_what_was_committed(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "replay", "--scenario", str(CORNER),
         "--db", str(db), "--minutes", "3", "--seed", "4", "--speed", "1000",
         "--write-timeout-s", "1"],
        capture_output=True, text=True, timeout=300, check=False, preexec_fn=small_disk,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    match = re.search(
        r"replay: database writes to .* "
        r"\(OperationalError: (?:disk I/O error|database or disk is full)\): "
        r"(\d+) of (\d+) observations and (\d) of 1 camera events committed",
        done.stderr,
    )
    assert match, done.stderr
    committed, total = int(match[1]), int(match[2])
    assert 0 < committed < total
    assert "observations and" not in done.stdout  # no success line
    with closing(connect(db, readonly=True)) as conn:
        assert count_track_points(conn) == committed


def test_progress_counts_committed_rows_not_submitted_ones(tmp_path: Path) -> None:
    sim = simulate_scenario(CORNER, seed=2, minutes=1)
    db = tmp_path / "box.db"
    writer = DbWriter(db, busy_timeout_ms=20)
    writer.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        replay = SimReplay(sim, writer, start_s=(sim.end_ms - sim.start_ms) / 1000)
        started = time.monotonic()
        with pytest.raises(ReplayError) as err:
            replay.run(threading.Event(), write_timeout_s=0.5)
        assert time.monotonic() - started < 30
        progress = replay.progress()
        assert progress.done and (progress.points, progress.events) == (0, 0)
        total = len(sim.observations)
        assert str(err.value).endswith(
            f"(OperationalError: database is locked): 0 of {total} observations and "
            "0 of 1 camera events committed"
        )
        assert writer.abort() == 2  # the points batch and the camera event
        writer.close()  # nothing left to do
    finally:
        blocker.close()
    with closing(connect(db, readonly=True)) as conn:
        assert count_track_points(conn) == 0
