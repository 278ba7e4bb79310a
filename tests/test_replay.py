"""A simulated store replayed into a real database as time passes (shifted to now, scaled)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab.replay import SimReplay, simulate_scenario, start_replay
from lab.sim import SimResult
from local_db import DbWriter, camera_events, connect, count_track_points, read_track_points

pytestmark = pytest.mark.sim

REPO = Path(__file__).resolve().parent.parent
CORNER = REPO / "examples" / "sim" / "corner_shop" / "scenario.yaml"
NOW_S = 1_900_000_000.0  # the wall time the replay's start maps to


@pytest.fixture(scope="module")
def sim() -> SimResult:
    return simulate_scenario(CORNER, seed=2, minutes=3)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[DbWriter]:
    with DbWriter(tmp_path / "box.db") as w:
        yield w


def stored(writer: DbWriter) -> pd.DataFrame:
    writer.flush()
    conn = connect(writer.path)
    try:
        rows = read_track_points(conn)
    finally:
        conn.close()
    return pd.DataFrame(rows, columns=["camera_id", "track_id", "t_ms", "x_m", "y_m", "conf"])


def test_points_are_written_as_their_shifted_time_comes(sim: SimResult, writer: DbWriter) -> None:
    obs = sim.observations
    assert len(obs) > 1000
    replay = SimReplay(sim, writer, speed=2.0, start_s=30, now_s=NOW_S)
    origin = sim.start_ms + 30_000
    # the first step writes the 30 simulated seconds before "now" as the recent past
    first = replay.step(NOW_S)
    assert first == int((obs["t_ms"] <= origin).sum()) > 0
    past = stored(writer)
    assert past["t_ms"].max() <= NOW_S * 1000
    assert past["t_ms"].min() == NOW_S * 1000 - 15_000  # 30 simulated s at 2x
    # five wall seconds later: ten more simulated seconds
    replay.step(NOW_S + 5)
    later = stored(writer)
    assert len(later) == int((obs["t_ms"] <= origin + 10_000).sum())
    assert replay.step(NOW_S + 5) == 0  # nothing is written twice
    expected = obs[obs["t_ms"] <= origin + 10_000]
    shifted = np.rint((expected["t_ms"].to_numpy() - origin) / 2).astype(np.int64) + NOW_S * 1000
    assert sorted(later["t_ms"]) == sorted(shifted.tolist())
    assert sorted(later["track_id"]) == sorted(expected["track_id"].tolist())
    assert np.allclose(sorted(later["x_m"]), sorted(expected["x_m"]))
    assert not replay.progress().done
    replay.step(NOW_S + 10_000)
    assert replay.progress().done
    assert len(stored(writer)) == len(obs)


def test_cameras_come_up_and_outages_go_down_and_up(sim: SimResult, writer: DbWriter) -> None:
    outage = pd.DataFrame(
        {
            "camera_id": ["shop"],
            "from_ms": [sim.start_ms + 60_000],
            "to_ms": [sim.start_ms + 90_000],
        }
    )
    replay = SimReplay(dataclasses.replace(sim, camera_outages=outage), writer, now_s=NOW_S)
    replay.step(NOW_S + 1_000)
    writer.flush()
    conn = connect(writer.path)
    try:
        events = camera_events(conn)
    finally:
        conn.close()
    now_ms = int(NOW_S * 1000)
    assert events == [
        ("shop", now_ms, "up", "simulated"),
        ("shop", now_ms + 60_000, "down", "simulated"),
        ("shop", now_ms + 90_000, "up", "simulated"),
    ]


def test_run_stops_when_the_run_is_over_or_when_asked(sim: SimResult, writer: DbWriter) -> None:
    # "now" is the end of the simulated run: everything is already due
    done = SimReplay(sim, writer, start_s=(sim.end_ms - sim.start_ms) / 1000).run(threading.Event())
    assert done.done and done.points == done.total_points == len(sim.observations)
    live = start_replay(SimReplay(sim, writer, speed=1.0), tick_s=0.05)
    stopped = live.stop()
    assert not live.thread.is_alive()
    assert not stopped.done and stopped.points < stopped.total_points
    with pytest.raises(ValueError, match="speed"):
        SimReplay(sim, writer, speed=0)
    with pytest.raises(ValueError, match="start_s"):
        SimReplay(sim, writer, start_s=-1)


def test_footfall_replay_fills_a_database(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["--scenario", str(CORNER), "--db", str(db), "--minutes", "1", "--seed", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "replay", *args, "--speed", "1000"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    conn = connect(db)
    try:
        n = count_track_points(conn)
        assert n > 0 and f"{n} of {n} observations" in done.stdout
        assert [e[2] for e in camera_events(conn)] == ["up"]
    finally:
        conn.close()
    bad = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "replay", *args, "--speed", "0"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "--speed" in bad.stderr
