"""The box's sender against a real hub server process (SQLite and PostgreSQL back ends)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

import wire
from appliance.analytics.engine import analyze_range
from appliance.box.health import Health
from appliance.box.scheduler import BoxScheduler
from appliance.config import parse_config
from cloud_hub.ingest import PAUSE_ENV
from cloud_hub.schema import FACTS, HOURLY, applied_batches
from local_db import connect, outbox
from local_db.alert_log import AlertChange, record_changes
from sync import Backoff, HubRejectedError, HubTarget, Sender
from tests.conftest import wait_for
from tests.hub_support import Hub, free_port, start_hub
from tests.stores import SHOP
from tests.sync_support import (
    BUCKET_MS,
    ROWS_PER_BUCKET,
    HubProxy,
    box_config,
    box_rows,
    fill_box,
    hub_count,
    hub_rows,
    new_box,
)
from tests.test_analytics import CUSTOMER, T0, observe, path

REPO = Path(__file__).resolve().parent.parent
DAY_BUCKETS = 288
STORE = "shop"


def _now_bucket() -> int:
    now = int(time.time() * 1000)
    return now - now % BUCKET_MS


def _target(hub: Hub, url: str, store: str) -> HubTarget:
    return HubTarget(url, store, STORE, tuple(hub.secrets[store]))


def _applied(hub: Hub, store: str) -> list[tuple[str, int, int]]:
    """The hub's ledger of applied batches: (batch id, rows, applied rows)."""
    with hub.engine.connect() as conn:
        rows = conn.execute(
            select(applied_batches.c.batch_id, applied_batches.c.rows,
                   applied_batches.c.applied_rows).where(applied_batches.c.store_id == store)
        )  # fmt: skip
        return [(str(b), int(n), int(a)) for b, n, a in rows]


def _assert_exactly_once(hub: Hub, store: str, db: Path) -> None:
    """The hub holds every box row as the box has it, and applied each exactly once."""
    box = box_rows(db, STORE)
    assert hub_rows(hub.engine, store) == box
    total = sum(len(rows) for rows in box.values())
    applied = _applied(hub, store)
    assert len({batch_id for batch_id, _, _ in applied}) == len(applied)
    assert sum(rows for _, rows, _ in applied) == total  # no row sent in two applied batches
    assert sum(changed for _, _, changed in applied) == total == hub_count(hub.engine, store)


@pytest.mark.slow  # 35-60 s here: 118,944 rows through the hub's real ingest
def test_a_week_offline_then_every_row_arrives_once(hub: Hub, tmp_path: Path) -> None:
    store = hub.new_store(tz="Europe/London")
    db = tmp_path / "box.db"
    week = 7 * DAY_BUCKETS
    start = _now_bucket() - week * BUCKET_MS
    with closing(new_box(db)) as conn:
        fill_box(conn, STORE, start, week)
    total = week * ROWS_PER_BUCKET
    # the hub is down for a week: a closed port; the scheduler's slot every 5 minutes
    backoff = Backoff(base_s=2.0, cap_s=3600.0)
    clock = [time.time() - 7 * 86400 - 2 * backoff.cap_s]  # the week ends before now
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    down = Sender(db, _target(hub, f"http://127.0.0.1:{free_port()}", store), backoff=backoff,
                  timeout_s=(2, 5), clock=lambda: clock[0], sleep=sleep,
                  rng=random.Random(7))  # fmt: skip
    runs = []
    for _ in range(week):
        runs.append(down())
        clock[0] += 300
    with closing(connect(db)) as conn:
        pending = outbox.pending_batch(conn, STORE, store)
        state = outbox.sync_state(conn, STORE, store)
        assert sum(outbox.pending_rows(conn, STORE, store).values()) == total  # nothing lost
    assert {r.state for r in runs} == {"unreachable", "backing_off"}
    attempts = sum(r.attempts for r in runs)
    assert pending is not None and pending.attempts == attempts == state.failures
    # backed off: the waits grow from seconds to the cap, far fewer tries than runs
    assert max(waits) <= backoff.cap_s
    assert all(wait <= 2.0 * 2**i for i, wait in enumerate(waits[:3]))
    assert attempts < week / 4
    assert sum(r.state == "backing_off" for r in runs) > week / 2
    assert hub_count(hub.engine, store) == 0
    # the hub is back: the scheduled runs send it all, the pending batch's id first
    up = Sender(db, _target(hub, hub.url, store))
    assert (up.lag_s() or 0) > 0
    results = [up()]
    while results[-1].state == "partial":
        results.append(up())
    assert results[-1].state == "synced", results[-1]
    assert sum(r.rows for r in results) == total
    assert sum(r.duplicates for r in results) == 0
    _assert_exactly_once(hub, store, db)
    assert pending.batch_id in [batch_id for batch_id, _, _ in _applied(hub, store)]
    assert up.lag_s() == 0.0


def _footfall(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", *args], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )  # fmt: skip


@pytest.mark.parametrize("killed", ["before_the_hub_commits", "after_the_hub_committed"])
def test_a_box_killed_mid_sync_resends_the_same_batch(
    hub: Hub, tmp_path: Path, killed: str
) -> None:
    store = hub.new_store()
    db = tmp_path / "box.db"
    with closing(new_box(db)) as conn:
        fill_box(conn, STORE, _now_bucket() - DAY_BUCKETS * BUCKET_MS, DAY_BUCKETS)
    env = {"HUB_SECRET": hub.secrets[store][0]}
    marker = tmp_path / "in-transaction"
    before = killed == "before_the_hub_commits"
    # before: a hub that pauses inside the batch's transaction (killed too, it rolls back);
    # after: the hub applies it, and its answer never reaches the box
    slow = start_hub(hub.db_url, tmp_path / "paused.log", {PAUSE_ENV: str(marker)})
    proxy = HubProxy(hub.url)
    proxy.hold_answers = True
    config = box_config(tmp_path, slow.url if before else proxy.url, store, name="first.yaml")
    push = _footfall("sync", "push", "--config", str(config), env=env)
    try:
        if before:
            wait_for(marker.exists, 60, "the hub to be inside the batch's transaction")
        else:
            wait_for(proxy.held.is_set, 60, "the hub to have answered the first batch")
        push.send_signal(signal.SIGKILL)
        push.communicate(timeout=30)
        slow.process.kill()
    finally:
        slow.stop()
        proxy.close()
    with closing(connect(db)) as conn:
        pending = outbox.pending_batch(conn, STORE, store)
    assert pending is not None
    if before:
        assert marker.read_text() == pending.batch_id
        assert _applied(hub, store) == []
    else:
        assert [batch_id for batch_id, _, _ in _applied(hub, store)] == [pending.batch_id]
    # the box restarts: the same batch id first (a duplicate if the hub had it), then the rest
    again = _footfall("sync", "push", "--config",
                      str(box_config(tmp_path, hub.url, store)), env=env)  # fmt: skip
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    duplicates = 1 if killed == "after_the_hub_committed" else 0
    assert f"({duplicates} duplicate(s))" in out and "synced" in out, out
    assert f"batch {pending.batch_id} acknowledged" in err
    _assert_exactly_once(hub, store, db)


@pytest.fixture
def engine_box(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A box database with real track points, analysed by the real engine."""
    db = tmp_path / "box.db"
    with closing(new_box(db)) as conn:
        _add_points(conn, observe(path(CUSTOMER), "cam-a", 1))
        analyze_range(conn, parse_config(SHOP), T0, T0 + 2 * BUCKET_MS)
        yield db, conn


def _add_points(conn: sqlite3.Connection, points: pd.DataFrame) -> None:
    rows = points.assign(conf=1.0)[["camera_id", "track_id", "t_ms", "x_m", "y_m", "conf"]]
    conn.executemany("INSERT INTO track_points VALUES (?,?,?,?,?,?)", rows.itertuples(index=False))


def _hub_footfall(hub: Hub, store: str) -> dict[str, int]:
    facts = FACTS["agg_footfall"]
    with hub.engine.connect() as conn:
        rows = conn.execute(
            select(facts.c.direction, func.sum(facts.c.count))
            .where(facts.c.store_id == store)
            .group_by(facts.c.direction)
        )
        return {str(d): int(n) for d, n in rows}


def test_a_bucket_re_analysed_after_it_was_sent_wins_at_the_hub(
    hub: Hub, engine_box: tuple[Path, sqlite3.Connection]
) -> None:
    db, conn = engine_box
    store = hub.new_store(tz="Europe/London")
    sender = Sender(db, _target(hub, hub.url, store))
    assert sender.push().state == "synced"
    assert _hub_footfall(hub, store) == {"in": 1, "out": 1}
    # late points of a second customer in the same buckets; the engine analyses them again
    _add_points(conn, observe(path([(t + 60, x, y) for t, x, y in CUSTOMER]), "cam-a", 2))
    analyze_range(conn, parse_config(SHOP), T0, T0 + 2 * BUCKET_MS)
    assert sum(outbox.pending_rows(conn, STORE, store).values()) > 0
    result = sender.push()
    assert result.state == "synced" and result.batches == 1
    assert _hub_footfall(hub, store) == {"in": 2, "out": 2}
    assert hub_rows(hub.engine, store) == box_rows(db, STORE)


def test_rows_a_re_analysis_no_longer_has_are_dropped_at_the_hub(
    hub: Hub, engine_box: tuple[Path, sqlite3.Connection]
) -> None:
    db, conn = engine_box
    config = parse_config(SHOP)
    _add_points(conn, observe(path([(t + 60, x, y) for t, x, y in CUSTOMER]), "cam-a", 2))
    analyze_range(conn, config, T0, T0 + 2 * BUCKET_MS)
    store = hub.new_store(tz="Europe/London")
    sender = Sender(db, _target(hub, hub.url, store))
    assert sender.push().state == "synced"
    before = hub_count(hub.engine, store)
    # the second walker's points turn out to be a reflection: gone, and the buckets analysed
    # again have fewer zone visits, transitions and heatmap cells than the hub was sent
    conn.execute("DELETE FROM track_points WHERE track_id = 2")
    analyze_range(conn, config, T0, T0 + 2 * BUCKET_MS)
    assert sender.push().state == "synced"
    box = box_rows(db, STORE)
    assert sum(len(rows) for rows in box.values()) < before
    assert hub_rows(hub.engine, store) == box
    assert _hub_footfall(hub, store) == {"in": 1, "out": 1}
    heat = HOURLY["agg_heatmap"]
    with hub.engine.connect() as hub_conn:  # the rollups follow the deletion
        cells = hub_conn.execute(
            select(func.count()).select_from(heat).where(heat.c.store_id == store)
        ).scalar_one()
    (distinct_cells,) = conn.execute(
        "SELECT count(*) FROM (SELECT DISTINCT cell_x, cell_y FROM agg_heatmap)"
    ).fetchone()
    assert cells == distinct_cells  # both buckets lie in one local hour


def test_alert_summaries_reach_the_hub_and_its_rollups_without_the_message(
    hub: Hub, engine_box: tuple[Path, sqlite3.Connection]
) -> None:
    db, conn = engine_box
    raised, cleared = T0 + 60_000, T0 + 7 * 60_000  # over the first bucket boundary
    record_changes(conn, STORE, [
        AlertChange("raise", "till-queue", "queue_length", "warning", "till", raised, 4.0,
                    "secret-word: 4 waiting at the till"),
        AlertChange("clear", "till-queue", "queue_length", "warning", "till", cleared, None, ""),
    ])  # fmt: skip
    analyze_range(conn, parse_config(SHOP), T0, T0 + 2 * BUCKET_MS)
    store = hub.new_store(tz="UTC")
    proxy = HubProxy(hub.url)
    try:
        assert Sender(db, _target(hub, proxy.url, store)).push().state == "synced"
    finally:
        proxy.close()
    assert hub_rows(hub.engine, store) == box_rows(db, STORE)
    facts, hourly = FACTS["agg_alerts"], HOURLY["agg_alerts"]
    with hub.engine.connect() as hub_conn:
        per_bucket = hub_conn.execute(
            select(facts.c.bucket_ms, facts.c.raised, facts.c.active_s)
            .where(facts.c.store_id == store)
            .order_by(facts.c.bucket_ms)
        ).all()
        hour = hub_conn.execute(
            select(hourly.c.sum_raised, hourly.c.sum_active_s).where(hourly.c.store_id == store)
        ).all()
    assert [tuple(r) for r in per_bucket] == [(T0, 1, 240.0), (T0 + BUCKET_MS, 0, 120.0)]
    assert [tuple(r) for r in hour] == [(1, 360.0)]
    assert all(b"secret-word" not in wire.gunzip(body) for body in proxy.bodies)


def test_no_trajectory_leaves_the_box(
    hub: Hub, engine_box: tuple[Path, sqlite3.Connection]
) -> None:
    db, conn = engine_box
    (points,) = conn.execute("SELECT count(*) FROM track_points").fetchone()
    assert points > 1000
    store = hub.new_store()
    proxy = HubProxy(hub.url)
    try:
        assert Sender(db, _target(hub, proxy.url, store)).push().state == "synced"
    finally:
        proxy.close()
    assert proxy.bodies
    for body in proxy.bodies:
        batch = wire.decode_batch(body)  # the bytes that left, decoded strictly
        assert batch.store_id == store and batch.row_count > 0
        for table, rows in batch.tables.items():
            assert table in wire.TABLES
            assert all(set(row) == wire.TABLES[table].column_names for row in rows)
        text = wire.gunzip(body).decode()
        for leak in ("track_id", "x_m", "y_m", "t_ms", "camera_id", "conf"):
            assert f'"{leak}"' not in text


def test_downlink_items_are_verified_good_ones_kept_bad_ones_rejected_and_logged(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = hub.new_store()
    db = tmp_path / "box.db"
    with closing(new_box(db)) as conn:
        fill_box(conn, STORE, _now_bucket() - 12 * BUCKET_MS, 12)
    secret = hub.secrets[store][0]
    good = wire.sign_downlink(secret, "config_version", "cv-1", {"version": 3})
    forged = wire.sign_downlink(wire.generate_secret(), "config_version", "cv-2", {"version": 4})
    tampered = wire.DownlinkItem("config_version", "cv-1", {"version": 666}, good.signature)
    proxy = HubProxy(hub.url)
    proxy.downlink = [good, forged, tampered]
    try:
        with caplog.at_level(logging.INFO, logger="sync"):
            result = Sender(db, _target(hub, proxy.url, store)).push()
    finally:
        proxy.close()
    assert result.state == "synced"
    assert (result.downlink_accepted, result.downlink_rejected) == (1, 2)
    with closing(connect(db)) as conn:
        stored = outbox.downlink(conn, store)
    assert [(d.item_id, d.accepted, d.payload) for d in stored] == [
        ("cv-1", True, {"version": 3}), ("cv-2", False, None), ("cv-1", False, None),
    ]  # fmt: skip
    rejected = [r.getMessage() for r in caplog.records if "downlink item rejected" in r.message]
    assert len(rejected) == 2 and all("no signature matches" in m for m in rejected)
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_refused_batch_is_kept_shown_and_not_retried_blindly(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = hub.new_store()
    db = tmp_path / "box.db"
    with closing(new_box(db)) as conn:
        fill_box(conn, STORE, _now_bucket() - 12 * BUCKET_MS, 12)
    wrong = wire.generate_secret()
    sender = Sender(db, HubTarget(hub.url, store, STORE, (wrong,)))
    with caplog.at_level(logging.INFO, logger="sync"), pytest.raises(HubRejectedError) as caught:
        sender()  # the scheduled job: health shows it failed
    assert "HTTP 401: no signature matches a secret of this store" in str(caught.value)
    assert [r for r in caplog.records if "the hub refused batch" in r.getMessage()]
    assert all(wrong not in r.getMessage() for r in caplog.records)
    with closing(connect(db)) as conn:
        state = outbox.sync_state(conn, STORE, store)
        pending = outbox.pending_batch(conn, STORE, store)
        assert sum(outbox.pending_rows(conn, STORE, store).values()) == 12 * ROWS_PER_BUCKET
    assert state.rejected and state.error and "401" in state.error
    assert pending is not None and pending.attempts == 1  # one try, no retry loop
    assert sender.push().state == "backing_off"  # the next scheduled runs wait
    assert hub_count(hub.engine, store) == 0
    # the installer fixes the secret and restarts the box: the same batch goes through
    result = Sender(db, _target(hub, hub.url, store)).push()
    assert result.state == "synced"
    assert _applied(hub, store)[0][0] == pending.batch_id
    _assert_exactly_once(hub, store, db)


def test_sync_status_and_push_on_the_command_line(hub: Hub, tmp_path: Path) -> None:
    store = hub.new_store()
    db = tmp_path / "box.db"
    with closing(new_box(db)) as conn:
        fill_box(conn, STORE, _now_bucket() - 24 * BUCKET_MS, 24)
    config = box_config(tmp_path, hub.url, store)
    secret = hub.secrets[store][0]
    env = {"HUB_SECRET": secret}

    def footfall(*args: str) -> tuple[int, str, str]:
        proc = _footfall(*args, "--config", str(config), env=env)
        out, err = proc.communicate(timeout=120)
        assert secret not in out + err
        return proc.returncode, out, err

    code, out, _ = footfall("sync", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["store_id"] == store and status["last_ack_ms"] is None
    assert sum(status["pending_rows"].values()) == 24 * ROWS_PER_BUCKET
    assert status["pending_rows"]["agg_heatmap"] == 24 * 40
    code, out, _ = footfall("sync", "push", "--once")
    assert code == 0 and "1 batch(es)" in out and "synced" in out, out
    code, out, _ = footfall("sync", "status")
    assert code == 0 and "last ack: never" not in out and "lag: 0 s" in out, out
    assert "agg_heatmap" in out
    # bad input: exit 2 with FILE: key: message, nothing sent
    env = {"HUB_SECRET": ""}
    code, _, err = footfall("sync", "push")
    assert code == 2 and f"{config}: hub.secret_env: $HUB_SECRET is not set" in err
    code, _, err = footfall("run")
    assert code == 2 and f"{config}: hub.secret_env: $HUB_SECRET is not set" in err
    config.write_text(SHOP)
    code, _, err = footfall("sync", "status")
    assert code == 2 and f"{config}: hub: not configured" in err


def test_the_scheduler_slot_shows_a_refusal_and_the_lag_in_health(hub: Hub, tmp_path: Path) -> None:
    store = hub.new_store()
    db = tmp_path / "box.db"
    with closing(new_box(db)) as conn:
        fill_box(conn, STORE, _now_bucket() - 12 * BUCKET_MS, 12)
    config = parse_config(SHOP)
    health = Health(config, db)

    def run_sync_slot(sender: Sender) -> dict[str, Any]:
        health.register_sync_lag(sender.lag_s)
        scheduler = BoxScheduler(config, db, health=health, sync=sender).build()
        runs = health.health_report()["jobs"].get("sync", {}).get("runs", 0)
        scheduler.start()
        try:
            scheduler.modify_job("sync", next_run_time=datetime.now(UTC))
            wait_for(lambda: health.health_report()["jobs"].get("sync", {}).get("runs", 0)
                     > runs, 60, "the sync job's outcome")  # fmt: skip
        finally:
            scheduler.shutdown(wait=True)
        return health.health_report()

    report = run_sync_slot(Sender(db, HubTarget(hub.url, store, STORE, (wire.generate_secret(),))))
    assert report["status"] == "degraded"
    assert "job sync: last run failed: HubRejectedError: the hub refused the pending batch: " \
           "HTTP 401: no signature matches a secret of this store" in report["reasons"]  # fmt: skip
    assert report["sync_lag_s"] > 0
    report = run_sync_slot(Sender(db, _target(hub, hub.url, store)))  # restarted, fixed
    assert report["jobs"]["sync"]["last_ok"] and report["sync_lag_s"] == 0.0
    assert hub_rows(hub.engine, store) == box_rows(db, STORE)
