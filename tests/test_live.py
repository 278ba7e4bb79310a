"""Live state from a real migrated SQLite: constructed walks and a simulated store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from appliance.analytics.ingest import ingest_csv
from appliance.analytics.live import LiveCache, LiveSnapshot, snapshot
from appliance.config import BoxConfig, load_config, parse_config
from lab.sim import SimResult, load_scenario, load_store_geometry, simulate
from local_db import connect, migrate

from .stores import SHOP

REPO = Path(__file__).resolve().parent.parent
T0 = 1_764_064_800_000  # 2025-11-25T10:00:00Z

STORE = SHOP


@pytest.fixture
def config() -> BoxConfig:
    return parse_config(STORE)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "footfall.db")
    migrate(c)
    yield c
    c.close()


def walk(
    waypoints: Sequence[tuple[float, float, float]], camera: str, track: int, hz: float = 10
) -> pd.DataFrame:
    """Points of a walk through (t_s, x, y) waypoints, linearly interpolated at ``hz``."""
    w = np.array(waypoints, float)
    t = np.arange(w[0, 0], w[-1, 0] + 1e-9, 1 / hz)
    return pd.DataFrame(
        {
            "camera_id": camera,
            "track_id": track,
            "t_ms": T0 + np.round(t * 1000).astype(np.int64),
            "x_m": np.interp(t, w[:, 0], w[:, 1]),
            "y_m": np.interp(t, w[:, 0], w[:, 2]),
            "conf": 0.9,
        }
    )


def write(conn: sqlite3.Connection, *walks: pd.DataFrame) -> None:
    """Insert points as the box's writer does: one transaction per batch."""
    rows = pd.concat(walks).sort_values("t_ms")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO track_points VALUES (?, ?, ?, ?, ?, ?)",
        rows[["camera_id", "track_id", "t_ms", "x_m", "y_m", "conf"]].itertuples(
            index=False, name=None
        ),
    )
    conn.execute("COMMIT")


def at(s: float) -> int:
    return T0 + round(s * 1000)


def test_one_person_seen_by_two_cameras_counts_once(
    conn: sqlite3.Connection, config: BoxConfig
) -> None:
    browsing = walk([(0, 2, 2), (30, 3, 3)], "cam-a", 1)
    rng = np.random.default_rng(1)
    twice = browsing.assign(camera_id="cam-b", track_id=2, x_m=browsing["x_m"] + 0.05)
    twice["y_m"] += rng.normal(0, 0.05, len(twice))
    queuing = walk([(0, 7, 3), (30, 7.5, 3)], "cam-b", 3)
    write(conn, browsing, twice, queuing)
    snap = snapshot(conn, config, at(20))
    assert snap.store_occupancy == 2
    assert len(snap.people) == 2 and not any(p.staff for p in snap.people)
    assert snap.zone_counts == {"display": 1, "queue": 1, "till": 0, "office": 0}
    assert snap.queue_lengths == {"queue": 1}
    assert snap.predicted_wait_s == {"queue": None}  # nobody served yet
    assert snap.cameras_up == {"cam-a": True, "cam-b": True}


def test_only_the_window_counts_and_future_points_wait(
    conn: sqlite3.Connection, config: BoxConfig
) -> None:
    # in the display until 20 s, then to the queue; all points are already stored
    write(conn, walk([(0, 2, 2), (20, 2, 2), (25, 7, 3), (60, 7, 3)], "cam-a", 1))
    cache = LiveCache(config)
    counts = []
    for s in (10, 23, 40, 70):
        snap = snapshot(conn, config, at(s), cache=cache)
        counts.append((snap.zone_counts["display"], snap.queue_lengths["queue"]))
    assert counts == [(1, 0), (0, 0), (0, 1), (0, 0)]  # at 23 s walking; gone after 63 s


def test_staff_stay_staff_across_id_switches_and_cameras(
    conn: sqlite3.Connection, config: BoxConfig
) -> None:
    # out of the office into the display; a new id at 20 s (ID switch), a hand-over to
    # cam-b at 40 s; a customer stands beside them
    staff = walk([(0, 1, 6), (10, 1, 6), (15, 2, 3), (60, 3, 3)], "cam-a", 7)
    staff.loc[staff["t_ms"] >= at(20), "track_id"] = 8
    staff.loc[staff["t_ms"] >= at(40), ["camera_id", "track_id"]] = ("cam-b", 9)
    customer = walk([(0, 3.5, 1.5), (60, 3.5, 1.5)], "cam-a", 10)
    write(conn, staff, customer)
    cache = LiveCache(config)
    seen = {}
    for s in range(1, 60):
        snap = snapshot(conn, config, at(s), cache=cache)
        seen[s] = (snap.staff_counts["display"], snap.zone_counts["display"])
    assert seen[5] == (0, 1)  # staff in the office, the customer in the display
    assert all(seen[s] == (1, 1) for s in range(18, 60)), seen
    # a fresh process (no cache) reads the lookback and learns the same
    assert snapshot(conn, config, at(50)).staff_counts["display"] == 1


def test_camera_events_say_which_cameras_are_up(
    conn: sqlite3.Connection, config: BoxConfig
) -> None:
    conn.executemany(
        "INSERT INTO camera_events VALUES (?, ?, ?, ?)",
        [("cam-a", at(0), "up", ""), ("cam-b", at(5), "down", "rtsp timeout")],
    )
    conn.execute("INSERT INTO camera_events VALUES ('cam-b', ?, 'up', '')", (at(30),))
    ups = [snapshot(conn, config, at(s)).cameras_up for s in (1, 10, 31)]
    assert ups == [
        {"cam-a": True, "cam-b": True},
        {"cam-a": True, "cam-b": False},
        {"cam-a": True, "cam-b": True},
    ]


def test_predicted_wait_is_people_ahead_times_service_time(
    conn: sqlite3.Connection, config: BoxConfig
) -> None:
    # the first customer queues, is served from 13.25 s (0.3 m inside the till) until
    # leaving it at 46 s (32.75 s) and goes; two more stand in the queue afterwards
    first = walk([(0, 7.5, 4), (10, 7.5, 3), (15, 7.5, 1), (45, 7.5, 1), (50, 5, 6)], "cam-a", 1)
    second = walk([(40, 7, 4), (120, 7, 4)], "cam-a", 2)
    third = walk([(40, 8.3, 4.5), (120, 8.3, 4.5)], "cam-a", 3)
    write(conn, first, second, third)
    snap = snapshot(conn, config, at(80))
    assert snap.queue_lengths == {"queue": 2}
    wait = snap.predicted_wait_s["queue"]
    assert wait is not None
    assert wait == pytest.approx(2 * 32.75, abs=1)


def simulate_store(name: str, minutes: float, seed: int = 1) -> tuple[BoxConfig, SimResult]:
    path = REPO / "examples" / "sim" / name / "scenario.yaml"
    sc = load_scenario(path)
    sc = sc.model_copy(
        update={"arrivals": sc.arrivals.model_copy(update={"duration_s": minutes * 60})}
    )
    result = simulate(sc, load_store_geometry(sc, path), seed=seed)
    return load_config(path.parent / "store.yaml"), result


def replay(
    conn: sqlite3.Connection,
    config: BoxConfig,
    sim: SimResult,
    tmp_path: Path,
    seconds: range,
) -> list[LiveSnapshot]:
    """Ingest a simulated store's observations and take a snapshot every second."""
    sim.write_csv(tmp_path / "observations.csv")
    ingest_csv(conn, tmp_path / "observations.csv", config)
    cache = LiveCache(config)
    return [snapshot(conn, config, sim.start_ms + s * 1000, cache=cache) for s in seconds]


@pytest.mark.sim
def test_a_simulated_shop_matches_its_truth(conn: sqlite3.Connection, tmp_path: Path) -> None:
    config, sim = simulate_store("corner_shop", 10)
    snaps = replay(conn, config, sim, tmp_path, range(60, 600, 2))
    truth = sim.occupancy.assign(customers=sim.occupancy["count"] - sim.occupancy["staff"])
    truth = truth.pivot(index="t_ms", columns="zone_id")
    times = [s.t_ms for s in snaps]
    ours = pd.Series([s.store_occupancy for s in snaps], index=times)
    store_err = (ours - truth[("customers", "__store__")].reindex(times)).abs()
    assert store_err.mean() < 0.3, store_err.describe()
    for zone in ("drinks", "snacks", "till-queue"):
        zone_ours = pd.Series([s.zone_counts[zone] for s in snaps], index=times)
        err = (zone_ours - truth[("customers", zone)].reindex(times)).abs()
        assert err.mean() < 0.2, (zone, err.describe())
    staff_ours = pd.Series([sum(p.staff for p in s.people) for s in snaps], index=times)
    staff_err = (staff_ours - truth[("staff", "__store__")].reindex(times)).abs()
    assert staff_err.mean() < 0.1, staff_err.describe()
    assert any(w is not None for s in snaps for w in s.predicted_wait_s.values())
