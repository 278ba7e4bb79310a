"""Keeping the database file small and its query plans good: vacuum and ``PRAGMA optimize``.

Neither runs inside a transaction (``VACUUM`` cannot); both take the write lock
themselves, waiting up to the connection's busy timeout for the writer thread.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Final, Literal

logger = logging.getLogger(__name__)

_AUTO_VACUUM_INCREMENTAL: Final = 2


@dataclass(frozen=True, slots=True)
class VacuumResult:
    """What one :func:`vacuum` did.

    Attributes:
        kind: ``full`` the first time (switching the file to incremental auto-vacuum),
            then ``incremental``.
        pages_before: database pages before.
        pages_after: database pages after.
    """

    kind: Literal["full", "incremental"]
    pages_before: int
    pages_after: int


def _page_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA page_count").fetchone()[0])


def vacuum(conn: sqlite3.Connection) -> VacuumResult:
    """Give free pages back to the file system.

    The first call switches the file to incremental auto-vacuum with one full
    ``VACUUM``; later calls release the free pages with ``PRAGMA incremental_vacuum``
    (cheap: no copy of the file).

    Args:
        conn: Autocommit connection with no transaction open.

    Returns:
        Which vacuum ran, and the page counts before and after.
    """
    before = _page_count(conn)
    kind: Literal["full", "incremental"]
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == _AUTO_VACUUM_INCREMENTAL:
        kind = "incremental"
        conn.execute("PRAGMA incremental_vacuum").fetchall()  # frees a page per row
    else:
        kind = "full"
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("VACUUM")
    return VacuumResult(kind, before, _page_count(conn))


def optimize(conn: sqlite3.Connection) -> None:
    """``PRAGMA optimize``: refresh the query planner's statistics where they are stale.

    Args:
        conn: Open connection.
    """
    conn.execute("PRAGMA optimize")


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA integrity_check``: what is wrong with the file, or ``[]`` when it is sound.

    Args:
        conn: Open connection (read-only is enough).

    Returns:
        SQLite's messages (a missing page, a broken index …), at most 100 of them.

    Raises:
        sqlite3.DatabaseError: The file is not a database or too damaged to check.
    """
    problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    return [] if problems == ["ok"] else problems
