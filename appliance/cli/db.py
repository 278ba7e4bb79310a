"""``footfall db …``: backup, restore, retention and the Litestream config.

Each command takes the parsed arguments and returns an exit code (0 ok,
1 failure, 2 bad input), printing one line on success to stdout and one line
per error to stderr. :func:`add_db_parser` adds them to the ``footfall``
parser.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from local_db.backup import (
    SIDECAR_SUFFIXES,
    BackupError,
    DatabaseExistsError,
    InvalidBackupError,
    backup,
    restore,
)
from local_db.connection import connect
from local_db.litestream import litestream_config
from local_db.track_points import count_track_points, delete_track_points_before

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
EXIT_BAD_INPUT: Final = 2
DEFAULT_RETENTION_HOURS: Final = 72.0
DEFAULT_SYNC_INTERVAL_S: Final = 10


def _error(command: str, message: object) -> None:
    print(f"db {command}: {message}", file=sys.stderr)


def _count_points(db: Path) -> int | None:
    """Track points in ``db`` (read-only), or None if it has no such table."""
    try:
        with closing(connect(db, readonly=True)) as conn:
            return count_track_points(conn)
    except sqlite3.Error:
        logger.debug("no track point count for %s", db, exc_info=True)
        return None


def cmd_db_backup(args: argparse.Namespace) -> int:
    """Copy a live database to a file (or a folder) consistently and atomically."""
    db, dest = Path(args.db), Path(args.dest)
    if not db.is_file():
        _error("backup", f"{db}: no such database file")
        return EXIT_BAD_INPUT
    if not dest.is_dir() and not dest.parent.is_dir():
        _error("backup", f"{dest}: folder {dest.parent} does not exist")
        return EXIT_BAD_INPUT
    try:
        out = backup(db, dest)
    except InvalidBackupError as exc:
        _error("backup", exc)
        return EXIT_BAD_INPUT
    except BackupError as exc:
        _error("backup", exc)
        return EXIT_FAIL
    points = _count_points(out)
    count = f", {points} track points" if points is not None else ""
    print(f"backed up {db} to {out} ({out.stat().st_size} bytes{count})")
    return EXIT_OK


def cmd_db_restore(args: argparse.Namespace) -> int:
    """Restore a backup to a database path, moving any existing database aside."""
    backup_file, db = Path(args.backup), Path(args.db)
    pattern = f"{db.name}.pre-restore-*"
    before = set(db.parent.glob(pattern)) if db.parent.is_dir() else set()
    try:
        restore(backup_file, db, force=bool(args.force))
    except DatabaseExistsError:
        _error("restore", f"{db}: database exists; pass --force to move it aside and restore")
        return EXIT_BAD_INPUT
    except InvalidBackupError as exc:
        _error("restore", exc)
        return EXIT_BAD_INPUT
    except BackupError as exc:
        _error("restore", exc)
        return EXIT_FAIL
    new_files = set(db.parent.glob(pattern)) - before
    aside = sorted(p for p in new_files if not p.name.endswith(SIDECAR_SUFFIXES))
    moved = f"; the old database is now {aside[0]}" if aside else ""
    points = _count_points(db)
    count = f" ({points} track points)" if points is not None else ""
    print(f"restored {db} from {backup_file}{count}{moved}")
    return EXIT_OK


def cmd_db_retention(args: argparse.Namespace) -> int:
    """Delete track points older than ``--hours``; aggregates are kept."""
    db = Path(args.db)
    hours = float(args.hours)
    if not hours > 0:
        _error("retention", f"--hours must be positive, got {args.hours}")
        return EXIT_BAD_INPUT
    if not db.is_file():
        _error("retention", f"{db}: no such database file")
        return EXIT_BAD_INPUT
    cutoff_ms = round(time.time() * 1000 - hours * 3_600_000)
    cutoff = datetime.fromtimestamp(cutoff_ms / 1000, UTC).isoformat(timespec="seconds")
    try:
        with closing(connect(db)) as conn:
            deleted = delete_track_points_before(conn, cutoff_ms)
    except sqlite3.Error as exc:
        _error("retention", f"{db}: deleting track points before {cutoff} failed: {exc}")
        return EXIT_FAIL
    print(f"deleted {deleted} track points older than {hours:g} h (before {cutoff}) from {db}")
    return EXIT_OK


def cmd_db_litestream_config(args: argparse.Namespace) -> int:
    """Print the Litestream YAML that replicates the database to ``--replica``."""
    try:
        text = litestream_config(
            Path(args.db), args.replica, sync_interval_s=int(args.sync_interval)
        )
    except ValueError as exc:
        _error("litestream-config", exc)
        return EXIT_BAD_INPUT
    print(text, end="")
    return EXIT_OK


def add_db_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db`` and its subcommands to the ``footfall`` parser.

    Args:
        sub: The top-level parser's subparsers (``parser.add_subparsers()``).
    """
    db = sub.add_parser("db", help="database backup, restore, retention and replication")
    db_sub = db.add_subparsers(dest="db_command", required=True)

    bk = db_sub.add_parser(
        "backup", help="consistent copy of a live database (SQLite online backup)"
    )
    bk.add_argument("db", help="the database file")
    bk.add_argument("dest", help="backup file to write (atomically), or an existing folder")
    bk.set_defaults(func=cmd_db_backup)

    rs = db_sub.add_parser(
        "restore",
        help="verify a backup, migrate it and install it as the database "
        "(stop footfall and litestream first)",
    )
    rs.add_argument("backup", help="the backup file")
    rs.add_argument("db", help="the database file to restore to")
    rs.add_argument(
        "--force",
        action="store_true",
        help="replace an existing database (it is moved to DB.pre-restore-<UTC time>)",
    )
    rs.set_defaults(func=cmd_db_restore)

    rt = db_sub.add_parser("retention", help="delete old track points (aggregates are kept)")
    rt.add_argument("db", help="the database file")
    rt.add_argument(
        "--hours",
        type=float,
        default=DEFAULT_RETENTION_HOURS,
        help=f"keep this many hours of track points (default {DEFAULT_RETENTION_HOURS:g})",
    )
    rt.set_defaults(func=cmd_db_retention)

    lc = db_sub.add_parser(
        "litestream-config", help="print the Litestream YAML replicating the database"
    )
    lc.add_argument("db", help="the database file")
    lc.add_argument("--replica", required=True, help="replica URL: s3://…, file:///…")
    lc.add_argument(
        "--sync-interval",
        type=int,
        default=DEFAULT_SYNC_INTERVAL_S,
        help=f"seconds between syncs (default {DEFAULT_SYNC_INTERVAL_S})",
    )
    lc.set_defaults(func=cmd_db_litestream_config)
