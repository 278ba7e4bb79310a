"""Online backups of the box's SQLite file, and restoring one.

:func:`backup` copies a live database with SQLite's online backup API: one
read transaction sees one consistent snapshot, and in WAL mode it neither
blocks nor is blocked by the :class:`local_db.DbWriter`. The copy is written
to a temporary file beside the destination, made self-contained (rollback
journal, no ``-wal``), synced and renamed into place, so a reader never sees
half a backup.

:func:`restore` checks a backup (``PRAGMA integrity_check`` and the
``_migrations`` table), copies it beside the target, brings its schema
forward with :func:`local_db.migrations.migrate`, and only then swaps it in.
An existing database (with its ``-wal`` and ``-shm``) is moved aside to
``<db>.pre-restore-<UTC time>``, never deleted. Stop the box (and
Litestream) before restoring over its live database.

Temporary copies are named ``.footfall-<backup|restore>-<pid>-<random>.tmp``: one
left behind by a process that was killed (its pid is gone) is removed by the
next backup or restore into that folder (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sqlite3
import tempfile
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from local_db.connection import DEFAULT_BUSY_TIMEOUT_MS, connect
from local_db.durable import fsync_dir, fsync_file
from local_db.migrations import MigrationError, migrate

logger = logging.getLogger(__name__)

#: The sidecar files SQLite keeps next to a database in WAL mode.
SIDECAR_SUFFIXES: Final = ("-wal", "-shm", "-journal")
_MAX_PROBLEMS_SHOWN: Final = 5
_TEMP: Final = re.compile(
    r"(?P<base>\.footfall-(?:backup|restore)-(?P<pid>\d+)-\w+\.tmp)(?:-wal|-shm|-journal|\.bak-[\w.-]+)?"
)


class BackupError(RuntimeError):
    """A backup or restore failed; nothing was replaced.

    Attributes:
        path: The file the error is about (the backup, or the database).
    """

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class InvalidBackupError(BackupError):
    """The backup file is missing, not a SQLite database, corrupt, or not footfall's."""


class DatabaseExistsError(BackupError):
    """The restore target exists and ``force`` was not given."""


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _open_existing(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """Open ``path`` without creating it and without changing its journal mode."""
    mode = "ro" if readonly else "rw"
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode={mode}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {DEFAULT_BUSY_TIMEOUT_MS}")
    return conn


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary copies (and sidecars) that killed backups or restores left.

    A file is stale when the process named in it is gone; this process's own
    and live processes' files are in use and kept.

    Returns:
        The temporary files removed.
    """
    stale: dict[Path, None] = {}  # ordered set: a copy with its sidecars is one temp copy
    for path in sorted(folder.glob(".footfall-*.tmp*")):
        match = _TEMP.fullmatch(path.name)
        if match is None:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            stale[folder / match["base"]] = None
    for path in stale:
        logger.warning("removed %s, left by a backup or restore that was killed", path)
    return list(stale)


def _temp_beside(target: Path, purpose: str) -> Path:
    """Create an empty, private temporary file in ``target``'s folder (stale ones go first)."""
    remove_stale_temps(target.parent)
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".footfall-{purpose}-{os.getpid()}-", suffix=".tmp"
    )
    os.close(fd)
    return Path(name)


def remove_database(path: Path) -> None:
    """Delete a SQLite file and its sidecars (WAL, shared memory, journal), if they exist."""
    for p in (path, *(path.with_name(path.name + s) for s in SIDECAR_SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _copy_database(src: sqlite3.Connection, target: Path) -> None:
    """Copy ``src`` into the (empty) file ``target`` as one self-contained file.

    ``pages=-1`` copies everything in one step under one read transaction: a
    consistent snapshot that concurrent writers (WAL) cannot restart.
    """
    with closing(sqlite3.connect(target, isolation_level=None)) as dst:
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode = DELETE")
    fsync_file(target)


def backup(db: Path, dest: Path) -> Path:
    """Copy a (possibly live) database to ``dest``, consistently and atomically.

    Safe while the box writes: the copy is one snapshot of committed
    transactions. The source's journal mode is left alone; the copy uses a
    rollback journal, so it is one file. An existing ``dest`` file is
    replaced atomically.

    Args:
        db: The database file.
        dest: The backup file to write, or an existing folder, in which
            ``<db stem>-<UTC time>.db`` is written.

    Returns:
        The path of the backup written.

    Raises:
        BackupError: ``db`` does not exist or cannot be read, ``dest`` is
            ``db`` itself, or the copy could not be written (then no
            partial file is left).
    """
    db = Path(db)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"{db.stem}-{_utc_stamp()}.db"
    if not db.is_file():
        raise InvalidBackupError(db, "no such database file to back up")
    if dest.exists() and dest.resolve() == db.resolve():
        raise BackupError(dest, "the backup destination is the database itself")
    if not dest.parent.is_dir():
        raise BackupError(dest, f"destination folder {dest.parent} does not exist")

    try:
        tmp = _temp_beside(dest, "backup")
    except OSError as exc:
        raise BackupError(dest, f"cannot create a file in {dest.parent}: {exc}") from exc
    try:
        with closing(_open_existing(db, readonly=False)) as src:
            _copy_database(src, tmp)
        tmp.replace(dest)
    except (sqlite3.Error, OSError) as exc:
        remove_database(tmp)
        raise BackupError(db, f"backup to {dest} failed: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        remove_database(tmp)
        raise
    fsync_dir(dest.parent)
    logger.info("backed up %s to %s (%d bytes)", db, dest, dest.stat().st_size)
    return dest


def verify_backup(path: Path) -> None:
    """Check that ``path`` is an intact footfall database.

    Args:
        path: The backup file.

    Raises:
        InvalidBackupError: The file is missing, not a SQLite database,
            fails ``PRAGMA integrity_check``, or has no ``_migrations`` table.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidBackupError(path, "no such backup file")
    try:
        with closing(_open_existing(path, readonly=True)) as conn:
            problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            has_migrations = (
                conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
                ).fetchone()
                is not None
            )
    except sqlite3.Error as exc:
        raise InvalidBackupError(
            path, f"not a readable SQLite database: {type(exc).__name__}: {exc}"
        ) from exc
    if problems != ["ok"]:
        shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        suffix = f" (and {more} more)" if more > 0 else ""
        raise InvalidBackupError(path, f"integrity_check failed: {shown}{suffix}")
    if not has_migrations:
        raise InvalidBackupError(path, "no _migrations table: not a footfall database")


def _move_aside(db: Path, stamp: str) -> list[tuple[Path, Path]]:
    """Rename ``db`` and its sidecars to ``<db>.pre-restore-<stamp>[-wal|-shm|-journal]``.

    The sidecars keep their suffix after the new name, so the moved-aside
    database still opens with its own WAL. Orphan sidecars (no ``db``) are
    moved too: a stale ``-wal`` would otherwise be replayed into the restored
    file. If a rename fails, the ones already done are undone.

    Returns:
        The ``(old, new)`` renames done, the database's last (none when
        neither ``db`` nor a sidecar existed).
    """
    aside = db.with_name(f"{db.name}.pre-restore-{stamp}")
    n = 1
    while aside.exists():
        aside = db.with_name(f"{db.name}.pre-restore-{stamp}-{n}")
        n += 1
    pairs = [(db.with_name(db.name + s), aside.with_name(aside.name + s)) for s in SIDECAR_SUFFIXES]
    pairs.append((db, aside))
    done: list[tuple[Path, Path]] = []
    try:
        for old, new in pairs:
            if old.exists():
                old.replace(new)
                done.append((old, new))
    except OSError:
        _undo(done)
        raise
    if done and done[-1][0] == db:
        logger.info("moved existing %s aside to %s", db, aside)
    return done


def _undo(renames: list[tuple[Path, Path]]) -> None:
    """Reverse ``(old, new)`` renames, logging (not raising) what cannot be undone."""
    for old, new in reversed(renames):
        try:
            new.replace(old)
        except OSError:
            logger.exception("could not move %s back to %s", new, old)


def _match_permissions(path: Path, like: Path) -> None:
    """Give ``path`` the mode and, where allowed, the owner of ``like``."""
    st = like.stat()
    os.chmod(path, st.st_mode & 0o7777)
    try:
        os.chown(path, st.st_uid, st.st_gid)
    except PermissionError:
        logger.warning("could not give %s the owner of %s (uid %d)", path, like, st.st_uid)


def restore(backup: Path, db: Path, *, force: bool = False) -> None:
    """Replace (or create) ``db`` from a backup, bringing its schema forward.

    The backup is verified first, then copied beside ``db`` and migrated
    there; only a verified, migrated copy is renamed to ``db``. An existing
    ``db`` (with ``-wal``/``-shm``) is moved to ``<db>.pre-restore-<UTC
    time>``, and the restored file takes its mode and owner. Run it with the
    box and Litestream stopped.

    Args:
        backup: The backup file (as written by :func:`backup`, or any
            footfall database).
        db: The database to restore to; its folder is created if needed.
        force: Replace an existing ``db``.

    Raises:
        DatabaseExistsError: ``db`` exists and ``force`` is false.
        InvalidBackupError: The backup is missing, corrupt or not footfall's.
        BackupError: Copying, migrating or renaming failed; ``db`` is as it
            was.
    """
    backup = Path(backup)
    db = Path(db)
    if db.exists() and not force:
        raise DatabaseExistsError(db, "database exists; restore with force to move it aside")
    if backup.resolve() == db.resolve():
        raise BackupError(db, "the backup is the database itself")
    verify_backup(backup)
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(db, "restore")
    except OSError as exc:
        raise BackupError(db, f"cannot create a file in {db.parent}: {exc}") from exc
    try:
        try:
            with closing(_open_existing(backup, readonly=True)) as src:
                _copy_database(src, tmp)
        except sqlite3.Error as exc:
            raise BackupError(
                backup, f"copying to {tmp} failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            with closing(connect(tmp)) as conn:
                applied = migrate(conn)
                conn.execute("PRAGMA journal_mode = DELETE")
        except (sqlite3.Error, MigrationError) as exc:
            raise BackupError(
                backup, f"migrating the restored copy failed: {type(exc).__name__}: {exc}"
            ) from exc
        # migrate() keeps a pre-migration copy beside the file it migrates; here
        # that is the backup itself, so the copy of the temporary file goes.
        for bak in tmp.parent.glob(f"{glob.escape(tmp.name)}.bak-*"):
            bak.unlink()
        fsync_file(tmp)
        moved = _move_aside(db, _utc_stamp())
        try:
            if moved and moved[-1][0] == db:
                _match_permissions(tmp, moved[-1][1])
            tmp.replace(db)
        except OSError:
            _undo(moved)
            raise
    except OSError as exc:
        raise BackupError(db, f"restore from {backup} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        remove_database(tmp)
        for bak in tmp.parent.glob(f"{glob.escape(tmp.name)}.bak-*"):
            bak.unlink()
    fsync_dir(db.parent)
    logger.info(
        "restored %s from %s (migrations applied: %s)", db, backup, ", ".join(applied) or "none"
    )
