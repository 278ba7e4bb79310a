"""The analytics engine on trajectories whose answers are known by construction."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from appliance.analytics.engine import BUCKET_MS, analyze_range, compute
from appliance.analytics.fusion import FusionSettings, fuse, jitter, smoothing_steps
from appliance.analytics.ingest import IngestError, ingest_csv
from appliance.config import BoxConfig, parse_config
from local_db import connect, migrate

from .stores import SHOP

T0 = 1_764_064_800_000  # 2025-11-25T10:00:00Z, a bucket boundary

STORE = SHOP


@pytest.fixture
def config() -> BoxConfig:
    return parse_config(STORE)


def path(waypoints: Sequence[tuple[float, float, float]], hz: float = 10) -> pd.DataFrame:
    """A walk through (t_s, x, y) waypoints, linearly interpolated at ``hz``."""
    w = np.array(waypoints, float)
    t = np.arange(w[0, 0], w[-1, 0], 1 / hz)
    return pd.DataFrame(
        {"t_ms": T0 + np.round(t * 1000).astype(np.int64), "x_m": np.interp(t, w[:, 0], w[:, 1]),
         "y_m": np.interp(t, w[:, 0], w[:, 2])}
    )  # fmt: skip


# A customer: in through the door at t=5 s, display 10 s → 40 s, queue 50 s → 110 s,
# served at the till from 112 s, out through the door at ~145 s.
CUSTOMER: list[tuple[float, float, float]] = [
    (0, 5, 7.8), (5, 5, 6.0), (10, 2.5, 2.5), (40, 2.5, 2.5), (50, 7.5, 4.5),
    (110, 7.5, 2.4), (112, 7.5, 1.0), (130, 7.5, 1.0), (140, 5, 6), (146, 5, 7.9),
]  # fmt: skip


def observe(track: pd.DataFrame, camera: str, track_id: int) -> pd.DataFrame:
    return track.assign(camera_id=camera, track_id=track_id)


def test_one_customer_every_metric(config: BoxConfig) -> None:
    pts = observe(path(CUSTOMER), "cam-a", 11)
    r = compute(pts, config, T0, T0 + BUCKET_MS)
    foot = r.tables["agg_footfall"].set_index("direction")["count"]
    assert foot.to_dict() == {"in": 1, "out": 1}
    dwell = r.tables["agg_dwell"].set_index("zone_id")
    assert dwell.loc["display", "visits"] == 1
    assert dwell.loc["display", "p50_s"] == pytest.approx(33, abs=3)  # enters ~8 s, leaves ~41 s
    ev = r.queue_events["queue"]
    assert len(ev) == 1 and not ev["abandoned"].iloc[0]
    assert ev["wait_s"].iloc[0] == pytest.approx(108.5 - 44.5, abs=3)
    tr = r.tables["agg_transitions"]
    assert set(zip(tr["from_zone"], tr["to_zone"], strict=True)) == {
        ("display", "queue"),
        ("queue", "till"),
    }
    heat = r.tables["agg_heatmap"]
    assert heat["person_s"].sum() == pytest.approx(145.9, abs=0.2)
    funnel = r.tables["agg_funnel"].set_index("kind")["people"].to_dict()
    assert funnel == {"in": 1, "display": 1}  # this shop has no checkout zone


def test_two_overlapping_cameras_count_once(config: BoxConfig) -> None:
    walk = path(CUSTOMER)
    rng = np.random.default_rng(3)
    seen_twice = pd.concat(
        [
            observe(walk, "cam-a", 1),
            observe(walk.assign(x_m=walk["x_m"] + rng.normal(0, 0.1, len(walk))), "cam-b", 2),
        ]
    )
    r = compute(seen_twice, config, T0, T0 + BUCKET_MS)
    assert fuse(seen_twice)["person"].nunique() == 1
    assert r.tables["agg_footfall"]["count"].tolist() == [1, 1]
    assert r.tables["agg_dwell"].set_index("zone_id").loc["display", "visits"] == 1


def test_id_switches_are_stitched(config: BoxConfig) -> None:
    walk = path(CUSTOMER)
    walk["track_id"] = 100 + (walk.index // 150)  # a new id every 15 s
    r = compute(walk.assign(camera_id="cam-a"), config, T0, T0 + BUCKET_MS)
    assert r.tables["agg_footfall"]["count"].tolist() == [1, 1]
    assert r.tables["agg_dwell"].set_index("zone_id").loc["display", "visits"] == 1


def test_a_switch_is_stitched_when_another_track_ends_in_the_same_instant(
    config: BoxConfig,
) -> None:
    walk = path(CUSTOMER)
    walk["track_id"] = np.where(walk["t_ms"] < T0 + 20_000, 1, 2)  # an ID switch at 20 s
    # someone else's track ends 50 ms after the switch, 5 m away (they left the view)
    other = observe(path([(10, 8, 7.5), (19.95, 8.5, 7.5)], hz=20), "cam-a", 3)
    pts = pd.concat([walk.assign(camera_id="cam-a"), other])
    assert fuse(pts)["person"].nunique() == 2


def test_exact_positions_are_not_smoothed_and_jittered_ones_are() -> None:
    walk = observe(path(CUSTOMER), "cam-a", 1)
    fused = fuse(walk)
    # a turn is not cut: exact observations come out as they went in
    assert np.allclose(fused["x_m"], walk["x_m"]) and np.allclose(fused["y_m"], walk["y_m"])
    rng = np.random.default_rng(5)
    noisy = walk.assign(
        x_m=walk["x_m"] + rng.normal(0, 0.15, len(walk)),
        y_m=walk["y_m"] + rng.normal(0, 0.15, len(walk)),
    )
    sigma = jitter(fuse(noisy, FusionSettings(max_smooth_steps=1)))
    assert sigma == pytest.approx(0.15, rel=0.1)
    assert smoothing_steps(sigma, FusionSettings()) == 5  # 0.15 / sqrt(5) < 7 cm
    smoothed = fuse(noisy)
    err = np.hypot(smoothed["x_m"] - walk["x_m"], smoothed["y_m"] - walk["y_m"])
    raw = np.hypot(noisy["x_m"] - walk["x_m"], noisy["y_m"] - walk["y_m"])
    assert err.mean() < 0.6 * raw.mean()


def test_a_person_who_vanishes_walking_through_the_door_went_out(config: BoxConfig) -> None:
    walk = path(CUSTOMER)
    cut = walk[walk["y_m"].lt(6.9) | walk["t_ms"].lt(T0 + 100_000)]  # last seen 10 cm short
    # someone who walks up to the door and stands there until lost is not counted out
    stands = path([(0, 5, 7.8), (5, 5, 5.0), (10, 5, 6.9), (20, 5, 6.9)])
    pts = pd.concat([observe(cut, "cam-a", 1), observe(stands, "cam-a", 2)])
    r = compute(pts, config, T0, T0 + BUCKET_MS)
    foot = r.tables["agg_footfall"].set_index("direction")["count"]
    assert foot.to_dict() == {"in": 2, "out": 1}


def test_a_turn_after_the_door_is_one_person_and_a_pass_is_two() -> None:
    # an ID switch just as the customer turns right after the door
    turn = path([(0, 5, 9), (2, 5, 6.5), (2.5, 5.4, 6.2), (6, 9, 6.9)])
    turn["track_id"] = np.where(turn["t_ms"] < T0 + 2_300, 1, 2)
    assert fuse(turn.assign(camera_id="cam-a"))["person"].nunique() == 1
    # one customer leaves the view where another walks in half a second later
    leaves = observe(path([(0, 5, 6), (3, 5, 8.9)]), "cam-a", 3)
    comes = observe(path([(3.5, 5.5, 8.9), (6, 5.5, 6)]), "cam-a", 4)
    assert fuse(pd.concat([leaves, comes]))["person"].nunique() == 2


def test_staff_are_excluded(config: BoxConfig) -> None:
    staff = observe(path([(0, 1, 6), (60, 1.5, 7), (100, 5, 6.5), (120, 1, 6)]), "cam-a", 5)
    r = compute(staff, config, T0, T0 + BUCKET_MS)
    assert r.staff_people == 1
    assert r.tables["agg_footfall"].empty


def test_jitter_on_the_line_counts_nothing(config: BoxConfig) -> None:
    t = np.arange(0, 60, 0.1)
    loiter = pd.DataFrame(
        {"t_ms": T0 + (t * 1000).astype(np.int64), "x_m": 5.0, "y_m": 7.0 + 0.1 * np.sin(t * 7)}
    )
    r = compute(observe(loiter, "cam-a", 9), config, T0, T0 + BUCKET_MS)
    assert r.tables["agg_footfall"].empty


def db_with(tmp_path: Path, points: pd.DataFrame) -> sqlite3.Connection:
    conn = connect(tmp_path / "f.db")
    migrate(conn)
    rows = points.assign(conf=1.0)[["camera_id", "track_id", "t_ms", "x_m", "y_m", "conf"]]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO track_points VALUES (?,?,?,?,?,?)", rows.itertuples(index=False))
    conn.execute("COMMIT")
    return conn


def dump(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    tables = [
        "agg_footfall",
        "agg_dwell",
        "agg_occupancy",
        "agg_queue",
        "agg_transitions",
        "agg_heatmap",
    ]
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4").fetchall() for t in tables}


def test_recompute_is_idempotent_and_late_points_update(tmp_path: Path, config: BoxConfig) -> None:
    conn = db_with(tmp_path, observe(path(CUSTOMER), "cam-a", 1))
    analyze_range(conn, config, T0, T0 + 2 * BUCKET_MS)
    first = dump(conn)
    analyze_range(conn, config, T0, T0 + 2 * BUCKET_MS)
    assert dump(conn) == first
    assert sum(int(str(r[-1])) for r in first["agg_footfall"]) == 2
    # a late second customer arrives in the same window: the recompute adds them once
    late = observe(path([(t + 60, x, y) for t, x, y in CUSTOMER]), "cam-a", 2)
    conn.executemany(
        "INSERT INTO track_points VALUES (?,?,?,?,?,?)",
        late.assign(conf=1.0)[["camera_id", "track_id", "t_ms", "x_m", "y_m", "conf"]].itertuples(
            index=False
        ),
    )
    analyze_range(conn, config, T0, T0 + 2 * BUCKET_MS)
    assert sum(int(str(r[-1])) for r in dump(conn)["agg_footfall"]) == 4
    windows = conn.execute("SELECT status, coverage FROM agg_windows").fetchall()
    assert windows == [("complete", 1.0), ("complete", 1.0)]


def test_a_dead_camera_marks_the_bucket_partial(tmp_path: Path, config: BoxConfig) -> None:
    conn = db_with(tmp_path, observe(path(CUSTOMER), "cam-a", 1))
    conn.executemany(
        "INSERT INTO camera_events VALUES (?, ?, ?, '')",
        [("cam-a", T0 - 1000, "up"), ("cam-b", T0 - 1000, "up"), ("cam-b", T0 + 60_000, "down")],
    )
    analyze_range(conn, config, T0, T0 + 2 * BUCKET_MS)
    rows = conn.execute("SELECT bucket_ms, status, coverage FROM agg_windows ORDER BY 1").fetchall()
    assert rows[0][1] == "partial" and rows[0][2] == pytest.approx((1 + 0.2) / 2)
    assert rows[1][1] == "partial" and rows[1][2] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("camera_id,track_id,t_ms,x_m\ncam-a,1,5,1\n", 1, "header lacks column(s) y_m"),
        (
            f"camera_id,track_id,t_ms,x_m,y_m\ncam-a,1,{T0},1,2\ncam-a,1,{T0},one,2\n",
            3,
            "x_m: 'one'",
        ),
        (
            f"camera_id,track_id,t_ms,x_m,y_m\ncam-a,1,{T0 + 9},1,2\ncam-a,1,{T0},1,2\n",
            3,
            "backwards",
        ),
        (f"camera_id,track_id,t_ms,x_m,y_m\ncam-a,1,{T0},1,2\ncam-z,1,{T0},1,2\n", 3, "'cam-z'"),
        ("camera_id,track_id,t_ms,x_m,y_m\ncam-a,1,5.5,1,2\n", 2, "not an integer"),
    ],
)
def test_bad_csv_names_the_line_and_keeps_nothing(
    tmp_path: Path, config: BoxConfig, text: str, line: int, message: str
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(text)
    conn = connect(tmp_path / "f.db")
    migrate(conn)
    with pytest.raises(IngestError, match=rf"{csv}:{line}: .*{re.escape(message)}"):
        ingest_csv(conn, csv, config)
    assert conn.execute("SELECT count(*) FROM track_points").fetchone() == (0,)


def test_rollups_follow_the_store_time_zone_across_dst() -> None:
    from appliance.analytics.rollups import period_start, rollup

    # Europe/London falls back on 2025-10-26: that local day has 25 hours.
    day_start = pd.Timestamp("2025-10-26 00:00", tz="Europe/London")
    buckets = pd.Series(
        (day_start.tz_convert("UTC").value // 1_000_000) + np.arange(0, 26 * 12) * BUCKET_MS
    )
    df = pd.DataFrame(
        {"store_id": "shop", "bucket_ms": buckets, "line_id": "door", "direction": "in", "count": 1}
    )
    days = rollup(df, "agg_footfall", "day", "Europe/London")
    assert days["count"].tolist() == [25 * 12, 12]  # 25 local hours, then 1 h of the next day
    hours = rollup(df, "agg_footfall", "hour", "Europe/London")
    assert len(hours) == 26 and set(hours["count"]) == {12}
    weeks = period_start(buckets, "week", "Europe/London")
    monday = pd.Timestamp("2025-10-20 00:00", tz="Europe/London").tz_convert("UTC").value // 10**6
    assert set(weeks) == {monday, monday + 7 * 86_400_000 + 3_600_000}
    months = period_start(buckets, "month", "Europe/London")
    october = pd.Timestamp("2025-10-01", tz="Europe/London").tz_convert("UTC").value // 10**6
    assert set(months) == {october}


def test_export_rolls_up_and_suppresses_small_counts(tmp_path: Path, config: BoxConfig) -> None:
    from appliance.analytics.export import read_table

    walkers = [
        observe(path([(t + 20 * i, x, y) for t, x, y in CUSTOMER]), "cam-a", i) for i in range(3)
    ]
    conn = db_with(tmp_path, pd.concat(walkers))
    analyze_range(conn, config, T0, T0 + 3 * BUCKET_MS)
    day = read_table(conn, "agg_footfall", T0, T0 + 3 * BUCKET_MS, period="day", tz="Europe/London")
    assert day.set_index("direction")["count"].to_dict() == {"in": 3, "out": 3}
    heat = read_table(conn, "agg_heatmap", T0, T0 + 3 * BUCKET_MS)
    heat_k = read_table(conn, "agg_heatmap", T0, T0 + 3 * BUCKET_MS, k=2)
    assert 0 < len(heat_k) < len(heat) and heat_k["people"].min() >= 2
    tr_k = read_table(conn, "agg_transitions", T0, T0 + 3 * BUCKET_MS, period="day", k=4)
    assert tr_k.empty  # three people only: every transition count is under 4


def test_kill_9_mid_write_never_leaves_partial_or_double_counts(
    tmp_path: Path, config: BoxConfig
) -> None:
    import signal
    import subprocess
    import sys
    import time

    store = tmp_path / "store.yaml"
    store.write_text(STORE)
    walkers = [
        observe(path([(t + 7 * i, x, y) for t, x, y in CUSTOMER]), "cam-a", i) for i in range(150)
    ]
    conn = db_with(tmp_path, pd.concat(walkers))
    conn.close()
    args = ["--config", str(store), "--db", str(tmp_path / "f.db")]
    span = ["--from", "2025-11-25T10:00:00Z", "--to", "2025-11-25T10:30:00Z"]
    cmd = [sys.executable, "-m", "appliance.cli", "analyze", *args, *span]
    # kill at ever later moments until a run finishes by itself: some kill lands in
    # each phase (start-up, reading, computing, the write transaction)
    kills, delay = 0, 0.4
    while True:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        check = connect(tmp_path / "f.db", readonly=True)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        total = check.execute("SELECT coalesce(sum(count), 0) FROM agg_footfall").fetchone()[0]
        check.close()
        assert total in (0, 300), f"partial or double counts after kill -9: {total}"
        delay += 0.4
    assert proc.returncode == 0 and kills >= 3
    conn = connect(tmp_path / "f.db", readonly=True)
    assert conn.execute("SELECT sum(count) FROM agg_footfall").fetchone()[0] == 300
    after_kills = dump(conn)
    conn.close()
    # the same answer as a run that was never interrupted
    (tmp_path / "clean").mkdir()
    clean = db_with(tmp_path / "clean", pd.concat(walkers))
    analyze_range(clean, config, T0, T0 + 6 * BUCKET_MS)
    assert dump(clean) == after_kills
