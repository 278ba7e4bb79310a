"""Per-request SQLite connections for the dashboard.

Pages read through a read-only connection; the few writes (accounts,
acknowledgements, the editor) go through a separate read-write one. Both are
opened lazily and closed when the request ends.
"""

from __future__ import annotations

import sqlite3

from flask import current_app, g

from local_db import connect


def _open(name: str, readonly: bool) -> sqlite3.Connection:
    conn: sqlite3.Connection | None = g.get(name)
    if conn is None:
        conn = connect(current_app.config["FOOTFALL_DB"], readonly=readonly)
        setattr(g, name, conn)
    return conn


def read_db() -> sqlite3.Connection:
    """This request's read-only connection."""
    return _open("_read_db", readonly=True)


def write_db() -> sqlite3.Connection:
    """This request's read-write connection (autocommit; a multi-row write is one transaction)."""
    return _open("_write_db", readonly=False)


def close_dbs(_exc: BaseException | None = None) -> None:
    """Close whatever this request opened (registered as a teardown handler)."""
    for name in ("_read_db", "_write_db"):
        conn: sqlite3.Connection | None = g.pop(name, None)
        if conn is not None:
            conn.close()
