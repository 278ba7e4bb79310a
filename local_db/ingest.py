"""Importing track points from a file (``footfall ingest``): all rows or none.

Unlike the writer thread's batches, an import refuses a ``(camera_id, track_id,
t_ms)`` that is already stored, so that importing a file twice is an error rather
than doubled visits.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from local_db.connection import transaction
from local_db.track_points import TrackPointRow

logger = logging.getLogger(__name__)


def _first_stored(conn: sqlite3.Connection, rows: Sequence[TrackPointRow]) -> int | None:
    """The index of the first row whose key is already in ``track_points``, if any."""
    t = [row[2] for row in rows]
    if not conn.execute(
        "SELECT EXISTS (SELECT 1 FROM track_points WHERE t_ms BETWEEN ? AND ?)", (min(t), max(t))
    ).fetchone()[0]:
        return None
    conn.execute(
        "CREATE TEMP TABLE ingest_keys (i INTEGER, camera_id TEXT, track_id INTEGER, t_ms INTEGER)"
    )
    try:
        conn.executemany(
            "INSERT INTO temp.ingest_keys VALUES (?, ?, ?, ?)",
            ((i, row[0], row[1], row[2]) for i, row in enumerate(rows)),
        )
        found = conn.execute(
            "SELECT min(k.i) FROM temp.ingest_keys k JOIN track_points p "
            "ON p.camera_id = k.camera_id AND p.track_id = k.track_id AND p.t_ms = k.t_ms"
        ).fetchone()
    finally:
        conn.execute("DROP TABLE temp.ingest_keys")
    return None if found[0] is None else int(found[0])


def import_track_points(conn: sqlite3.Connection, rows: Sequence[TrackPointRow]) -> int | None:
    """Insert ``rows`` in one transaction, unless one of them is already stored.

    The check and the insert are one transaction (``BEGIN IMMEDIATE``), so no other
    writer can store a row in between.

    Args:
        conn: Autocommit connection with no transaction open.
        rows: ``(camera_id, track_id, t_ms, x_m, y_m, conf)`` tuples, no key twice.

    Returns:
        None when every row was inserted; else the index in ``rows`` of the first row
        whose ``(camera_id, track_id, t_ms)`` is already stored, and nothing was written.
    """
    if not rows:
        return None
    with transaction(conn):
        stored = _first_stored(conn, rows)
        if stored is not None:
            return stored
        conn.executemany(
            "INSERT INTO track_points (camera_id, track_id, t_ms, x_m, y_m, conf) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    logger.debug("imported %d track points", len(rows))
    return None
