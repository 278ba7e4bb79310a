"""Tests for local_db against real SQLite files."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import NamedTuple

import pytest

from local_db import (
    DbWriter,
    MigrationError,
    camera_events,
    connect,
    count_track_points,
    delete_track_points_before,
    migrate,
    read_track_points,
)
from local_db import migrations as migrations_module
from local_db.track_points import TrackPointRow
from local_db.writer import THREAD_NAME


class Point(NamedTuple):
    camera_id: str
    track_id: int
    t_ms: int
    x_m: float
    y_m: float
    conf: float


T0 = 1_700_000_000_000


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "footfall.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(db_path)
    yield c
    c.close()


@pytest.fixture
def temp_migration() -> Iterator[list[str]]:
    """Names registered through this list are removed from the registry afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        migrations_module.MIGRATIONS.pop(name, None)


def _rows(camera_id: str, n: int, start: int = 0) -> list[TrackPointRow]:
    return [(camera_id, -(2**62) + i, T0 + start + i, i * 0.01, 1.5, 0.9) for i in range(n)]


def _names(conn: sqlite3.Connection, kind: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))}


# --- connection -----------------------------------------------------------------


def test_connect_sets_pragmas(conn: sqlite3.Connection, db_path: Path) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.isolation_level is None
    migrate(conn)

    ro = connect(db_path, readonly=True)
    try:
        assert ro.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ro.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert count_track_points(ro) == 0
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.execute("INSERT INTO camera_events (camera_id, t_ms, state) VALUES ('c', 1, 'up')")
    finally:
        ro.close()


def test_connect_readonly_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(sqlite3.OperationalError, match=r"nope\.db"):
        connect(missing, readonly=True)
    assert not missing.exists()


# --- migrations -----------------------------------------------------------------


def test_migrate_records_once_and_is_idempotent(conn: sqlite3.Connection) -> None:
    assert migrate(conn) == sorted(migrations_module.MIGRATIONS)
    assert migrate(conn) == []
    assert migrate(conn) == []
    rows = conn.execute("SELECT name, applied_at_utc FROM _migrations").fetchall()
    assert [r[0] for r in rows] == sorted(migrations_module.MIGRATIONS)
    assert rows[0][1].endswith("+00:00")
    assert {"track_points", "camera_events", "_migrations"} <= _names(conn, "table")
    assert {
        "idx_track_points_t_ms",
        "idx_track_points_camera_track_t",
        "idx_camera_events_camera_t",
    } <= _names(conn, "index")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("INSERT INTO camera_events (camera_id, t_ms, state) VALUES ('c', 1, 'meh')")


def test_fresh_database_gets_no_backup(db_path: Path, conn: sqlite3.Connection) -> None:
    migrate(conn)
    assert list(db_path.parent.glob("*.bak-*")) == []


def test_failing_migration_rolls_back_and_names_itself(
    conn: sqlite3.Connection, temp_migration: list[str]
) -> None:
    def bad(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half_done (x INTEGER)")
        c.execute("INSERT INTO no_such_table VALUES (1)")

    temp_migration.append("9999_bad")
    migrations_module.migration("9999_bad")(bad)

    with pytest.raises(MigrationError, match="9999_bad") as info:
        migrate(conn)
    assert info.value.migration_name == "9999_bad"
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not conn.in_transaction
    assert "half_done" not in _names(conn, "table")
    applied = [r[0] for r in conn.execute("SELECT name FROM _migrations")]
    # the good ones before it stay applied
    assert applied == sorted(m for m in migrations_module.MIGRATIONS if m != "9999_bad")

    migrations_module.MIGRATIONS.pop("9999_bad")
    assert migrate(conn) == []


def test_duplicate_migration_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="0001_track_points"):
        migrations_module.migration("0001_track_points")(lambda c: None)


def test_backup_before_migrating_existing_database(
    db_path: Path, conn: sqlite3.Connection, temp_migration: list[str]
) -> None:
    migrate(conn)
    conn.execute(
        "INSERT INTO track_points VALUES (?, ?, ?, ?, ?, ?)", ("cam1", 7, T0, 1.0, 2.0, 0.5)
    )

    def add_zones(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE zones (name TEXT PRIMARY KEY)")

    temp_migration.append("0002_zones")
    migrations_module.migration("0002_zones")(add_zones)

    assert migrate(conn) == ["0002_zones"]
    backup = db_path.with_name(db_path.name + ".bak-0002_zones")
    assert backup.is_file()
    with closing(connect(backup, readonly=True)) as bak:  # the state before 0002
        assert read_track_points(bak) == [("cam1", 7, T0, 1.0, 2.0, 0.5)]
        assert "zones" not in _names(bak, "table")
    assert "zones" in _names(conn, "table")
    assert migrate(conn) == []


# --- read helpers ---------------------------------------------------------------


def test_read_helpers_filter_order_and_delete(conn: sqlite3.Connection) -> None:
    migrate(conn)
    conn.row_factory = sqlite3.Row  # helpers still return plain tuples
    rows = [
        ("b", 2, T0 + 10, 0.0, 0.0, 0.1),
        ("a", 9, T0 + 10, 1.0, 1.0, 0.2),
        ("a", 1, T0 + 10, 2.0, 2.0, 0.3),
        ("a", 1, T0, 3.0, 3.0, 0.4),
        ("b", 2, T0 + 20, 4.0, 4.0, 0.5),
    ]
    conn.executemany("INSERT INTO track_points VALUES (?, ?, ?, ?, ?, ?)", rows)

    got = read_track_points(conn)
    assert got == [rows[3], rows[2], rows[1], rows[0], rows[4]]
    assert all(type(r) is tuple for r in got)
    assert read_track_points(conn, camera_id="b") == [rows[0], rows[4]]
    assert read_track_points(conn, t0_ms=T0 + 10, t1_ms=T0 + 20) == [rows[2], rows[1], rows[0]]
    assert read_track_points(conn, camera_id="a", t1_ms=T0 + 10) == [rows[3]]
    assert count_track_points(conn) == 5
    assert count_track_points(conn, "a") == 3
    assert count_track_points(conn, "zzz") == 0

    assert delete_track_points_before(conn, T0 + 10) == 1
    assert delete_track_points_before(conn, T0 + 10) == 0
    assert count_track_points(conn) == 4
    assert not conn.in_transaction


# --- writer ---------------------------------------------------------------------


def test_writer_many_threads(db_path: Path) -> None:
    per_thread = 12_500
    with DbWriter(db_path) as writer:
        assert any(t.name == THREAD_NAME and t.daemon for t in threading.enumerate())

        def produce(k: int) -> None:
            rows = _rows(f"cam{k}", per_thread, start=k * per_thread)
            for i in range(0, per_thread, 250):
                chunk = rows[i : i + 250]
                if k == 0:  # callers may pass NamedTuples
                    writer.submit_points([Point(*r) for r in chunk])
                else:
                    writer.submit_points(chunk)

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        writer.flush()
        assert writer.rows_written == 50_000
        assert writer.last_error is None

        reader = connect(db_path, readonly=True)
        try:
            assert count_track_points(reader) == 50_000
            for k in range(4):
                assert count_track_points(reader, f"cam{k}") == per_thread
            assert read_track_points(reader, camera_id="cam2") == _rows(
                "cam2", per_thread, start=2 * per_thread
            )
        finally:
            reader.close()
    assert not any(t.name == THREAD_NAME for t in threading.enumerate())


def test_close_flushes(db_path: Path) -> None:
    writer = DbWriter(db_path)
    writer.start()
    for i in range(20):
        writer.submit_points(_rows("cam1", 100, start=i * 100))
    writer.submit_camera_state("cam1", T0, "up")
    writer.close()  # no explicit flush
    writer.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit_points(_rows("cam1", 1))
    with pytest.raises(RuntimeError):
        writer.start()

    c = connect(db_path, readonly=True)
    try:
        assert count_track_points(c) == 2000
        assert len(camera_events(c)) == 1
    finally:
        c.close()


def test_submit_before_start_and_bad_rows_are_rejected(db_path: Path) -> None:
    writer = DbWriter(db_path)
    with pytest.raises(RuntimeError, match="not started"):
        writer.submit_points(_rows("cam1", 1))
    writer.start()
    try:
        good = ("cam1", 1, T0, 0.0, 0.0, 0.5)
        bad_rows: list[tuple[object, ...]] = [
            ("cam1", 1, T0, float("nan"), 0.0, 0.5),  # NaN would be stored as NULL
            ("cam1", 2**63, T0, 0.0, 0.0, 0.5),  # not a signed 64-bit track id
            ("cam1", 1.5, T0, 0.0, 0.0, 0.5),
            ("", 1, T0, 0.0, 0.0, 0.5),
            ("cam1", 1, T0, 0.0, 0.0),
        ]
        for bad in bad_rows:
            with pytest.raises(ValueError, match="track point 1"):
                writer.submit_points([good, bad])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="state"):
            writer.submit_camera_state("cam1", T0, "sideways")  # type: ignore[arg-type]
        writer.flush()
        assert writer.rows_written == 0
    finally:
        writer.close()


def test_readers_see_committed_rows_while_writing(db_path: Path) -> None:
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    with DbWriter(db_path) as writer:
        reader = connect(db_path, readonly=True)

        def poll() -> None:
            try:
                while not stop.is_set():
                    seen.append(count_track_points(reader))
            except BaseException as exc:  # reported to the test below
                errors.append(exc)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            check = connect(db_path, readonly=True)
            try:
                for i in range(30):
                    writer.submit_points(_rows("cam1", 500, start=i * 500))
                    writer.flush()
                    assert count_track_points(check) == (i + 1) * 500
                    assert not check.in_transaction
            finally:
                check.close()
        finally:
            stop.set()
            poller.join()
            reader.close()

    assert errors == []
    assert seen == sorted(seen)  # never goes backwards
    assert any(0 < n < 15_000 for n in seen)  # saw intermediate states


@pytest.mark.parametrize("busy_timeout_ms", [50, 5000])
def test_writer_survives_locked_database(
    db_path: Path, busy_timeout_ms: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="local_db.writer")
    with DbWriter(db_path, busy_timeout_ms=busy_timeout_ms) as writer:
        locker = connect(db_path)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            writer.submit_points(_rows("cam1", 1000))
            writer.submit_camera_state("cam1", T0, "down", "rtsp timeout")
            time.sleep(0.5)
            assert writer.rows_written == 0
            assert count_track_points(locker) == 0
            locker.execute("COMMIT")
        finally:
            locker.close()

        writer.flush(timeout=15)
        assert writer.rows_written == 1001
        if busy_timeout_ms < 500:  # the lock outlived the busy timeout: retried
            assert isinstance(writer.last_error, sqlite3.OperationalError)
            assert "locked" in str(writer.last_error)
            assert f"1000 track points and 1 camera events to {db_path}" in caplog.text
        else:  # the busy timeout waited it out
            assert writer.last_error is None

    c = connect(db_path, readonly=True)
    try:
        assert read_track_points(c) == _rows("cam1", 1000)
        assert camera_events(c) == [("cam1", T0, "down", "rtsp timeout")]
    finally:
        c.close()


def test_camera_events_round_trip(db_path: Path) -> None:
    with DbWriter(db_path) as writer:
        writer.submit_camera_state("cam2", T0 + 5, "down", "no frames for 10 s")
        writer.submit_camera_state("cam1", T0, "up")
        writer.submit_camera_state("cam2", T0 + 9, "up", "")
        writer.submit_camera_state("cam1", T0 + 7, "down", "connection refused")
        writer.flush()
        assert writer.rows_written == 4
        c = connect(db_path, readonly=True)
        try:
            assert camera_events(c) == [
                ("cam1", T0, "up", ""),
                ("cam2", T0 + 5, "down", "no frames for 10 s"),
                ("cam1", T0 + 7, "down", "connection refused"),
                ("cam2", T0 + 9, "up", ""),
            ]
            assert camera_events(c, "cam2") == [
                ("cam2", T0 + 5, "down", "no frames for 10 s"),
                ("cam2", T0 + 9, "up", ""),
            ]
        finally:
            c.close()


def test_flush_times_out_while_database_stays_locked(db_path: Path) -> None:
    writer = DbWriter(db_path, busy_timeout_ms=10)
    writer.start()
    locker = connect(db_path)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        writer.submit_points(_rows("cam1", 10))
        with pytest.raises(TimeoutError, match="uncommitted"):
            writer.flush(timeout=0.3)
        locker.execute("ROLLBACK")
    finally:
        locker.close()
    writer.close()
    assert writer.rows_written == 10
