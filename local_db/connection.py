"""Opening SQLite connections with the box's standard settings.

Every connection is in autocommit mode (``isolation_level=None``): reads never
hold a transaction open, and every write of the box is one :func:`transaction`
(``BEGIN IMMEDIATE`` … ``COMMIT``, ``ROLLBACK`` on any error), the writer
thread's batches included.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_MS = 5000


def connect(
    path: str | Path,
    *,
    readonly: bool = False,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> sqlite3.Connection:
    """Open a SQLite database with WAL, a busy timeout and autocommit.

    The connection has ``journal_mode=WAL``, ``busy_timeout``,
    ``synchronous=NORMAL`` and ``foreign_keys=ON`` and may be used from any
    thread (``check_same_thread=False``); the caller must not share it between
    threads at the same time.

    Args:
        path: Database file. It is created (with its directory's permissions)
            unless ``readonly`` is set.
        readonly: Open through a ``mode=ro`` URI; writes then fail with
            ``sqlite3.OperationalError``. The journal mode is a property of
            the file, so a read-only connection does not try to change it.
        busy_timeout_ms: How long a statement waits for another connection's
            lock before failing with ``database is locked``.

    Returns:
        The open connection.

    Raises:
        sqlite3.OperationalError: The file cannot be opened (read-only mode and
            a missing file, a missing directory, bad permissions).
    """
    db_path = Path(path)
    try:
        if readonly:
            uri = f"{db_path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError as exc:
        mode = "read-only" if readonly else "read-write"
        raise sqlite3.OperationalError(f"cannot open {db_path} ({mode}): {exc}") from exc

    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not readonly:
            mode_row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode_row is None or str(mode_row[0]).lower() != "wal":
                logger.warning(
                    "journal_mode=WAL not available for %s, running with %s", db_path, mode_row
                )
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error:
        conn.close()
        raise
    logger.debug("opened %s (readonly=%s)", db_path, readonly)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block as one write transaction: ``BEGIN IMMEDIATE``, then commit or roll back.

    ``BEGIN IMMEDIATE`` takes the database's write lock at once (waiting up to the busy
    timeout for another writer), so a read-then-write inside the block sees no change by
    another connection in between. Leaving the block normally (``return`` included)
    commits; any exception, ``KeyboardInterrupt`` too, rolls back and propagates.

    Args:
        conn: An autocommit connection (:func:`connect`) with no transaction open.

    Yields:
        ``conn``, inside the transaction.

    Raises:
        sqlite3.OperationalError: The lock was not granted within the busy timeout
            (``database is locked``), or the commit failed (then it was rolled back).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("rollback failed")
        raise
