"""Staged rollouts: groups one after another, paused by a failing canary or by the forecast.

The end-to-end test runs a real ``footfall hub serve --releases`` process (the ingest API,
the downlink and the TUF repository) and three simulated boxes, each a folder with its
config and database, a releases folder and a process playing the box
(:mod:`tests.update_support`). A box learns of its rollout the way a real one does: a
``footfall sync push`` (its heartbeat's answer carries the ``software_update`` item), then
``footfall update apply --config``, which installs, gates, rolls back if it must and
reports the outcome to the hub. The forecast check runs on real hourly rollups made by the
hub's own ingest of 5-minute buckets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

import wire
from cloud_hub.db import migrate, open_engine
from cloud_hub.ingest import Delivery, apply_batch
from cloud_hub.registry import add_store
from cloud_hub.releases import Repository
from cloud_hub.rollouts import (
    HOUR_MS,
    WEEK_MS,
    RolloutError,
    act,
    advance,
    create_rollout,
    forecast_departure,
    parse_group,
    provider,
    record_report,
    rollout_views,
)
from lab.pgserver import free_port, start_hub
from tests.conftest import REPO
from tests.sync_support import box_config, new_box
from tests.update_support import RESTART, ReleaseHub

NOW_MS = 1_780_000_000_000 // HOUR_MS * HOUR_MS


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite hub with ten stores, s0..s9, in two regions."""
    engine = open_engine(f"sqlite:///{tmp_path}/hub.db")
    migrate(engine)
    with engine.begin() as conn:
        for n in range(10):
            add_store(conn, f"s{n}", f"Store {n}", "north" if n < 6 else "south",
                      "Europe/Berlin", 300.0, NOW_MS)  # fmt: skip
    yield engine
    engine.dispose()


def groups_of(engine: Engine, rollout_id: int) -> dict[str, list[str]]:
    with engine.connect() as conn:
        view = rollout_views(conn, rollout_id)[0]
    return {g.name: [s["store_id"] for s in g.stores] for g in view.groups}


def test_groups_take_named_stores_then_cumulative_shares(engine: Engine) -> None:
    specs = [parse_group(t, n) for n, t in enumerate(["canary=s1,s7", "50%", "rest=100%"])]
    with engine.begin() as conn:
        rollout_id = create_rollout(conn, "2.0.0", specs, NOW_MS)
    groups = groups_of(engine, rollout_id)
    assert groups["canary"] == ["s1", "s7"]
    assert len(groups["group 2"]) == 3 and len(groups["rest"]) == 5
    everyone = [s for members in groups.values() for s in members]
    assert sorted(everyone) == [f"s{n}" for n in range(10)]  # each store once
    with engine.begin() as conn:
        items = {s: list(provider(conn, s, NOW_MS)) for s in everyone}
    assert [kind for kind, _, _ in items["s1"]] == ["software_update"]
    assert items["s1"][0][2] == {"version": "2.0.0", "channel": "stable", "rollout_id": rollout_id}
    assert all(items[s] == [] for s in groups["group 2"] + groups["rest"])  # not started


def test_shares_of_a_region_and_bad_groups_are_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        rollout_id = create_rollout(conn, "2.0.0", [parse_group("100%", 0)], NOW_MS,
                                    regions=["south"])  # fmt: skip
        act(conn, rollout_id, "abort", NOW_MS)
    assert groups_of(engine, rollout_id) == {"group 1": ["s6", "s7", "s8", "s9"]}
    bad = {
        ("canary=s1,nope",): "no store 'nope'",
        ("a=s1", "b=s1"): "store 's1' is in two groups",
        ("100%", "late=10%"): "group 'late' has no store",
        ("0%",): "a share is over 0%",
        ("=",): "give store ids",
    }
    for texts, message in bad.items():
        with pytest.raises(RolloutError, match=message), engine.begin() as conn:
            create_rollout(conn, "2.0.1", [parse_group(t, n) for n, t in enumerate(texts)],
                           NOW_MS)  # fmt: skip
    with engine.begin() as conn:
        create_rollout(conn, "2.0.2", [parse_group("s0", 0)], NOW_MS)
        with pytest.raises(RolloutError, match="is not finished"):
            create_rollout(conn, "2.0.3", [parse_group("s1", 0)], NOW_MS)
    with engine.begin() as conn, pytest.raises(RolloutError, match="no region 'west'"):
        create_rollout(conn, "2.0.4", [parse_group("100%", 0)], NOW_MS, channel="beta",
                       regions=["west"])  # fmt: skip


def load_hours(engine: Engine, store_id: str, per_bucket: dict[int, int]) -> None:
    """Ingest 5-minute footfall and analysis windows for each hour: ``count`` in a bucket."""
    footfall, windows = [], []
    for hour_ms, count in per_bucket.items():
        for i in range(12):
            bucket = hour_ms + i * wire.BUCKET_MS
            footfall.append({"bucket_ms": bucket, "line_id": "door", "direction": "in",
                             "count": count, "rev": 1})  # fmt: skip
            windows.append({"bucket_ms": bucket, "computed_at_ms": bucket, "coverage": 1.0,
                            "status": "complete", "customers": count, "staff": 1,
                            "rev": 1})  # fmt: skip
    batch = wire.Batch(store_id, wire.new_batch_id(), NOW_MS,
                       {"agg_footfall": footfall, "agg_windows": windows})  # fmt: skip
    apply_batch(engine, batch, Delivery(store_id, batch.batch_id, NOW_MS // 1000), NOW_MS)


def test_footfall_outside_its_seasonal_interval_is_a_departure(engine: Engine) -> None:
    installed = NOW_MS - 6 * HOUR_MS + 60_000  # the first whole hour after it is -5 h
    hours = [NOW_MS - h * HOUR_MS for h in range(5, 0, -1)]
    history = {h - k * WEEK_MS: 4 + (k % 3) for h in hours for k in range(1, 9)}  # 48–72 an hour
    load_hours(engine, "s1", history | {h: 5 for h in hours})  # 60 an hour: as usual
    load_hours(engine, "s2", history | {h: 0 for h in hours[:4]})  # the detector went blind
    with engine.connect() as conn:
        usual = forecast_departure(conn, "s1", installed, NOW_MS)
        blind = forecast_departure(conn, "s2", installed, NOW_MS)
        fresh = forecast_departure(conn, "s2", NOW_MS - 2 * HOUR_MS, NOW_MS)
    assert (usual.measured, usual.outside, usual.departed) == (5, 0, False)
    assert (blind.measured, blind.outside, blind.departed) == (4, 4, True)  # hour 5 not analysed
    assert "0 visitors, expected " in blind.example
    assert (fresh.measured, fresh.departed) == (1, False)  # too soon to judge

    specs = [parse_group("canary=s1,s2", 0), parse_group("rest=100%", 1)]
    with engine.begin() as conn:
        rollout_id = create_rollout(conn, "2.0.0", specs, installed - 60_000, soak_min=0)
        for store in ("s1", "s2"):
            report = {"store_id": store, "rollout_id": rollout_id, "version": "2.0.0",
                      "outcome": "installed", "reason": "", "running": "2.0.0"}  # fmt: skip
            record_report(conn, store, report, installed)
        events = advance(conn, NOW_MS)
    view = rollout_views(engine.connect(), rollout_id)[0]
    assert view.state == "paused", events
    assert "s2: footfall left its forecast interval in 4 of 4 hours" in view.reason
    assert view.groups[1].started_ms is None


@dataclass
class SimBox:
    """A simulated box: config and database, releases folder, the process playing it."""

    store: str
    secret: str
    config: Path
    releases: Path
    port: int
    restart: list[str]
    pidfile: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One ``footfall`` command as this box."""
        return subprocess.run(
            [sys.executable, "-m", "appliance.cli", *args], cwd=REPO, text=True,
            capture_output=True, timeout=180, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO), "HUB_SECRET": self.secret},
        )  # fmt: skip

    def update(self, trust_root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        """``footfall update apply`` with this box's releases, gate and restart."""
        return self.run(
            "update", "apply", "--releases", str(self.releases), "--trust-root", str(trust_root),
            "--health-url", f"http://127.0.0.1:{self.port}/healthz", "--gate-s", "4",
            "--poll-s", "0.1", "--restart-command", " ".join(self.restart), *extra,
        )  # fmt: skip

    def stop(self) -> None:
        """Kill the process playing the box."""
        if self.pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(self.pidfile.read_text()), signal.SIGKILL)


def test_a_failing_canary_pauses_the_rollout_before_the_next_group(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo", [tmp_path / "offline" / "root.pem"])
    db_url = f"sqlite:///{tmp_path}/hub.db"
    engine = open_engine(db_url)
    migrate(engine)
    hub = start_hub(db_url, tmp_path / "hub.log", args=["--releases", str(repo.folder)])
    releases = ReleaseHub(repo, tmp_path / "offline" / "root.pem", hub.url, tmp_path)
    for version, mode in (("1.0.0", "healthy"), ("2.0.0", "degraded"), ("2.0.1", "healthy")):
        releases.publish(version, mode)
    script = tmp_path / "restart.py"
    script.write_text(RESTART)
    boxes: list[SimBox] = []
    try:
        for name in ("canary", "b", "c"):
            folder = tmp_path / name
            folder.mkdir()
            with engine.begin() as conn:
                secret = add_store(conn, name, name, "north", "Europe/Berlin", 300.0, NOW_MS)
            config = box_config(folder, hub.url, name)
            with closing(new_box(folder / "box.db")):
                pass
            port, pidfile = free_port(), folder / "probe.pid"
            restart = [sys.executable, str(script), str(folder / "releases"), str(port),
                       str(pidfile)]  # fmt: skip
            box = SimBox(name, secret, config, folder / "releases", port, restart, pidfile)
            boxes.append(box)
            first = box.update(releases.trust_root, "--hub", hub.url, "--version", "1.0.0")
            assert first.returncode == 0, first.stderr
        canary, *others = boxes

        made = canary.run("hub", "rollout", "create", "2.0.0", "--db", db_url,
                          "--group", "canary=canary", "--group", "rest=100%",
                          "--soak-min", "0", "--no-forecast-check")  # fmt: skip
        assert made.returncode == 0, made.stderr
        rollout_id = int(made.stdout.split()[1].rstrip(":"))
        for box in boxes:
            pushed = box.run("sync", "push", "--config", str(box.config))
            assert pushed.returncode == 0, pushed.stderr
        failed = canary.update(releases.trust_root, "--config", str(canary.config))
        assert failed.returncode == 1 and "rolled back" in failed.stderr, failed.stderr
        status = json.loads(canary.run("hub", "rollout", "status", str(rollout_id), "--db",
                                       db_url, "--json").stdout)[0]  # fmt: skip
        assert status["state"] == "paused", status
        assert "group canary: 1 of 1 boxes failed" in status["reason"]
        assert "canary rolled back" in status["reason"]
        rest = status["groups"][1]
        assert rest["started_ms"] is None
        assert {s["outcome"] for s in rest["stores"]} == {None}
        with engine.connect() as conn:  # a paused rollout sends nothing
            assert [list(provider(conn, box.store, NOW_MS)) for box in boxes] == [[], [], []]
        for box in others:  # their boxes keep 1.0.0
            pushed = box.run("sync", "push", "--config", str(box.config))
            assert pushed.returncode == 0, pushed.stderr
            shown = json.loads(box.run("update", "status", "--releases", str(box.releases),
                                       "--json").stdout)  # fmt: skip
            assert shown["current"] == "1.0.0"

        aborted = canary.run("hub", "rollout", "abort", str(rollout_id), "--db", db_url)
        assert aborted.returncode == 0, aborted.stderr
        made = canary.run("hub", "rollout", "create", "2.0.1", "--db", db_url,
                          "--group", "canary=canary", "--group", "rest=100%",
                          "--soak-min", "0", "--no-forecast-check")  # fmt: skip
        assert made.returncode == 0, made.stderr
        good_id = int(made.stdout.split()[1].rstrip(":"))
        with engine.connect() as conn:  # the rest wait for the canary
            assert [len(list(provider(conn, box.store, NOW_MS))) for box in boxes] == [1, 0, 0]
        for group in ([canary], others):
            for box in group:
                pushed = box.run("sync", "push", "--config", str(box.config))
                assert pushed.returncode == 0, pushed.stderr
                done = box.update(releases.trust_root, "--config", str(box.config))
                assert done.returncode == 0, done.stderr
                assert "update: 2.0.1 installed" in done.stdout
        status = json.loads(canary.run("hub", "rollout", "status", str(good_id), "--db",
                                       db_url, "--json").stdout)[0]  # fmt: skip
        assert status["state"] == "done", status
        outcomes = {s["store_id"]: s["outcome"] for g in status["groups"] for s in g["stores"]}
        assert outcomes == {"canary": "installed", "b": "installed", "c": "installed"}
    finally:
        for box in boxes:
            box.stop()
        hub.stop()
        engine.dispose()
