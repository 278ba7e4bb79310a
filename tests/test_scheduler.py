"""The scheduled jobs on a real SQLite file with real points, driven by explicit times."""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import closing
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from appliance.analytics.engine import analyze_range
from appliance.box.health import Health
from appliance.box.scheduler import BoxScheduler
from appliance.config import BoxConfig, parse_config
from local_db import DbWriter, connect, count_track_points

from .conftest import wait_for
from .stores import ONE_CAMERA_SHOP

T0 = 1_764_064_800_000  # 2025-11-25T10:00:00Z, a bucket boundary
MIN = 60_000

STORE = ONE_CAMERA_SHOP

# People walking in through the door: the minute (after T0) and second they cross it.
ENTRIES = [(1, 0), (3, 20), (6, 0), (8, 40), (11, 0), (16, 0), (17, 30), (21, 0), (26, 0),
           (27, 0), (28, 0), (31, 0), (36, 0)]  # fmt: skip


def walker(track_id: int, t_cross_ms: int) -> list[tuple[str, int, int, float, float, float]]:
    """One person crossing the door inwards at ``t_cross_ms`` (10 points/s, 0.45 m/s)."""
    t = np.arange(-1700, 2000, 100)
    return [("cam-a", track_id, t_cross_ms + int(dt), 5.0, 7.0 - 0.45 * dt / 1000, 0.9) for dt in t]


def entry_ms(minute: int, second: int) -> int:
    return T0 + minute * MIN + second * 1000


def write_points(db: Path, entries: list[tuple[int, int]], first_id: int = 1) -> None:
    with DbWriter(db) as writer:
        for i, (m, s) in enumerate(entries):
            writer.submit_points(walker(first_id + i, entry_ms(m, s)))


def footfall_by_bucket(db: Path) -> dict[int, int]:
    with closing(connect(db, readonly=True)) as conn:
        rows = conn.execute(
            "SELECT bucket_ms, count FROM agg_footfall WHERE direction = 'in' ORDER BY bucket_ms"
        ).fetchall()
    return {(b - T0) // MIN: n for b, n in rows}


def windows(db: Path) -> list[int]:
    with closing(connect(db, readonly=True)) as conn:
        rows = conn.execute("SELECT bucket_ms FROM agg_windows ORDER BY bucket_ms").fetchall()
    return [(b - T0) // MIN for (b,) in rows]


def minutes(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [((a - T0) // MIN, (b - T0) // MIN) for a, b in ranges]


@pytest.fixture
def config() -> BoxConfig:
    return parse_config(STORE)


def test_minute_ticks_a_suspend_and_a_clock_jump_back(tmp_path: Path, config: BoxConfig) -> None:
    db = tmp_path / "box.db"
    write_points(db, ENTRIES)
    jobs = BoxScheduler(config, db)
    runs: list[tuple[int, list[tuple[int, int]]]] = []

    def tick(minute: int) -> None:
        runs.append((minute, minutes(jobs.analytics_job(now_ms=T0 + minute * MIN))))

    for minute in range(1, 13):  # every minute, 10:01 … 10:12
        tick(minute)
    tick(32)  # suspended for 20 minutes
    tick(33)
    for minute in range(20, 37):  # the clock is set back to 10:20 and runs on
        tick(minute)
    ran = [(m, r) for m, r in runs if r]
    # a bucket is analysed 1 min (late_grace_s) after it closes; the previous one is
    # recomputed once with it (late points); the suspend's missed buckets come in one go
    assert ran == [(6, [(0, 5)]), (11, [(0, 10)]), (32, [(5, 30)]), (36, [(25, 35)])]
    per_bucket = Counter(b for _, r in ran for t0, t1 in r for b in range(t0, t1, 5))
    assert per_bucket == {0: 2, 5: 2, 10: 1, 15: 1, 20: 1, 25: 2, 30: 1}
    expected = Counter(m - m % 5 for m, _ in ENTRIES if m < 35)
    assert footfall_by_bucket(db) == dict(expected)
    assert windows(db) == [0, 5, 10, 15, 20, 25, 30]

    # a restart: the high-water mark is in agg_windows, nothing is skipped or repeated
    again = BoxScheduler(config, db)
    assert again.analytics_job(now_ms=T0 + 37 * MIN) == []
    assert minutes(again.analytics_job(now_ms=T0 + 41 * MIN)) == [(30, 40)]
    assert footfall_by_bucket(db)[35] == 1


def test_late_points_are_counted_by_the_second_pass(tmp_path: Path, config: BoxConfig) -> None:
    db = tmp_path / "box.db"
    write_points(db, [(1, 0), (2, 0)])
    jobs = BoxScheduler(config, db)
    assert minutes(jobs.analytics_job(now_ms=T0 + 6 * MIN)) == [(0, 5)]
    assert footfall_by_bucket(db) == {0: 2}
    write_points(db, [(4, 30)], first_id=100)  # a camera's batch arrives late
    assert minutes(jobs.analytics_job(now_ms=T0 + 11 * MIN)) == [(0, 10)]
    assert footfall_by_bucket(db) == {0: 3}


def test_a_high_water_mark_from_a_wrong_clock_is_not_trusted(
    tmp_path: Path, config: BoxConfig
) -> None:
    db = tmp_path / "box.db"
    write_points(db, [(1, 0)])
    with closing(connect(db)) as conn:  # written while the clock was a day ahead
        analyze_range(conn, config, T0 + 1440 * MIN, T0 + 1445 * MIN)
    jobs = BoxScheduler(config, db)
    assert minutes(jobs.analytics_job(now_ms=T0 + 6 * MIN)) == [(0, 5)]
    assert footfall_by_bucket(db) == {0: 1}


def test_buckets_past_retention_are_not_analysed(tmp_path: Path) -> None:
    config = parse_config(STORE + "storage: {track_retention_hours: 1}\n")
    db = tmp_path / "box.db"
    write_points(db, [(1, 0)])
    jobs = BoxScheduler(config, db)
    assert minutes(jobs.analytics_job(now_ms=T0 + 6 * MIN)) == [(0, 5)]
    # off for two hours: the buckets whose 30-min lookback reaches expired points are skipped
    assert minutes(jobs.analytics_job(now_ms=T0 + 126 * MIN)) == [(100, 125)]
    # no high-water mark and only expired points: nothing to analyse
    fresh = tmp_path / "fresh.db"
    write_points(fresh, [(1, 0)])
    assert BoxScheduler(config, fresh).analytics_job(now_ms=T0 + 126 * MIN) == []


def test_catching_up_runs_in_hour_chunks_and_reports_progress(
    tmp_path: Path, config: BoxConfig
) -> None:
    db = tmp_path / "box.db"
    write_points(db, [(1, 0), (150, 0)])
    health = Health(config, db, clock=lambda: (T0 + 181 * MIN) / 1000)
    jobs = BoxScheduler(config, db, health=health)
    assert minutes(jobs.analytics_job(now_ms=T0 + 181 * MIN)) == [(0, 60), (60, 120), (120, 180)]
    assert health.health_report()["analytics"]["analysed_until_ms"] == T0 + 180 * MIN
    assert footfall_by_bucket(db) == {0: 1, 150: 1}


def test_nightly_maintenance_deletes_expired_points_and_vacuums(tmp_path: Path) -> None:
    config = parse_config(STORE + "storage: {track_retention_hours: 1}\n")
    db = tmp_path / "box.db"
    write_points(db, [(m, 30) for m in range(180)])  # 37 points a minute for 3 hours
    jobs = BoxScheduler(config, db)
    first = jobs.maintenance_job(now_ms=T0 + 120 * MIN)
    with closing(connect(db, readonly=True)) as conn:
        kept = conn.execute("SELECT min(t_ms), count(*) FROM track_points").fetchone()
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    assert kept[0] >= T0 + 60 * MIN and first.deleted_points == 60 * 37
    assert first.vacuum == "full" and first.pages_after < first.pages_before
    second = jobs.maintenance_job(now_ms=T0 + 180 * MIN)
    assert second.deleted_points == 60 * 37 and second.vacuum == "incremental"
    assert second.pages_after < second.pages_before
    with closing(connect(db, readonly=True)) as conn:
        assert count_track_points(conn) == 60 * 37 == kept[1] - 60 * 37


def test_the_jobs_run_under_apscheduler(tmp_path: Path, config: BoxConfig) -> None:
    db = tmp_path / "box.db"
    write_points(db, [(1, 0)])
    synced = threading.Event()
    health = Health(config, db)

    def sync() -> None:
        synced.set()

    jobs = BoxScheduler(config, db, health=health, sync=sync)
    stop = threading.Event()
    thread = threading.Thread(target=jobs.run, args=(stop,))
    thread.start()
    try:
        wait_for(
            lambda: jobs.scheduler is not None and "analytics" in health.health_report()["jobs"],
            30,
            "the analytics job to run at start",
        )
        scheduler = jobs.scheduler
        assert scheduler is not None
        by_id = {job.id: job for job in scheduler.get_jobs()}
        assert set(by_id) == {"analytics", "optimize", "maintenance", "sync"}  # no report wired
        for job in by_id.values():
            assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time > 0
        nightly = by_id["maintenance"].next_run_time
        assert (nightly.hour, nightly.minute, str(nightly.tzinfo)) == (3, 30, "Europe/London")
        scheduler.modify_job("sync", next_run_time=datetime.now(nightly.tzinfo))
        assert synced.wait(30)
        report = health.health_report()
        # the real clock is far past the test's points: they are expired, nothing analysed
        assert report["jobs"]["analytics"]["last_ok"] is True
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and jobs.scheduler is None


def test_a_failing_job_degrades_health_and_the_weekly_report_is_scheduled(
    tmp_path: Path, config: BoxConfig
) -> None:
    db = tmp_path / "box.db"
    health = Health(config, db)
    failed = threading.Event()

    def sync() -> None:
        failed.set()
        raise ConnectionError("hub unreachable")

    jobs = BoxScheduler(config, db, health=health, sync=sync, weekly_report=lambda: None)
    scheduler = jobs.build()
    scheduler.start()
    try:
        job = scheduler.get_job("weekly_report")
        assert job is not None and job.next_run_time.strftime("%a %H:%M") == "Mon 07:00"
        scheduler.modify_job("sync", next_run_time=datetime.now(job.next_run_time.tzinfo))
        assert failed.wait(30)
        wait_for(lambda: "sync" in health.health_report()["jobs"], 30, "the sync job's outcome")
    finally:
        scheduler.shutdown(wait=True)
    report = health.health_report()
    assert report["status"] == "degraded"
    assert "job sync: last run failed: ConnectionError: hub unreachable" in report["reasons"]
    assert report["jobs"]["sync"]["failures"] == 1
