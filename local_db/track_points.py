"""Typed queries on ``track_points`` and ``camera_events``.

All helpers take an autocommit connection (see :func:`local_db.connect`) and
return plain tuples whatever the connection's ``row_factory`` is. Time ranges
are half-open: ``t0_ms <= t_ms < t1_ms``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from local_db.connection import transaction

logger = logging.getLogger(__name__)

#: ``(camera_id, track_id, t_ms, x_m, y_m, conf)``
TrackPointRow = tuple[str, int, int, float, float, float]
#: ``(camera_id, t_ms, state, detail)``
CameraEventRow = tuple[str, int, str, str]


def _fetch_tuples(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[Any]:
    cur = conn.cursor()
    cur.row_factory = None
    try:
        return cur.execute(sql, params).fetchall()
    finally:
        cur.close()


def read_track_points(
    conn: sqlite3.Connection,
    *,
    camera_id: str | None = None,
    t0_ms: int | None = None,
    t1_ms: int | None = None,
) -> list[TrackPointRow]:
    """Return track points ordered by ``(t_ms, camera_id, track_id)``.

    Args:
        conn: Open connection.
        camera_id: Only this camera; all cameras when None.
        t0_ms: Inclusive lower bound on ``t_ms`` (UTC epoch ms); none when None.
        t1_ms: Exclusive upper bound on ``t_ms``; none when None.

    Returns:
        ``(camera_id, track_id, t_ms, x_m, y_m, conf)`` tuples.
    """
    where: list[str] = []
    params: list[Any] = []
    if camera_id is not None:
        where.append("camera_id = ?")
        params.append(camera_id)
    if t0_ms is not None:
        where.append("t_ms >= ?")
        params.append(t0_ms)
    if t1_ms is not None:
        where.append("t_ms < ?")
        params.append(t1_ms)
    sql = "SELECT camera_id, track_id, t_ms, x_m, y_m, conf FROM track_points"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY t_ms, camera_id, track_id"
    return _fetch_tuples(conn, sql, params)


def count_track_points(conn: sqlite3.Connection, camera_id: str | None = None) -> int:
    """Count track points, of one camera or of all.

    Args:
        conn: Open connection.
        camera_id: Only this camera; all cameras when None.

    Returns:
        The number of rows.
    """
    if camera_id is None:
        rows = _fetch_tuples(conn, "SELECT count(*) FROM track_points", [])
    else:
        rows = _fetch_tuples(
            conn, "SELECT count(*) FROM track_points WHERE camera_id = ?", [camera_id]
        )
    return int(rows[0][0])


def camera_events(conn: sqlite3.Connection, camera_id: str | None = None) -> list[CameraEventRow]:
    """Return camera up/down events ordered by ``t_ms`` (then insertion order).

    Args:
        conn: Open connection.
        camera_id: Only this camera; all cameras when None.

    Returns:
        ``(camera_id, t_ms, state, detail)`` tuples.
    """
    sql = "SELECT camera_id, t_ms, state, detail FROM camera_events"
    params: list[Any] = []
    if camera_id is not None:
        sql += " WHERE camera_id = ?"
        params.append(camera_id)
    sql += " ORDER BY t_ms, rowid"
    return _fetch_tuples(conn, sql, params)


def delete_track_points_before(conn: sqlite3.Connection, t_ms: int) -> int:
    """Delete track points older than ``t_ms`` (retention).

    This is a write: it takes the write lock with ``BEGIN IMMEDIATE`` and so
    waits (up to the busy timeout) for the :class:`local_db.DbWriter`'s
    transactions, and they for it.

    Args:
        conn: Autocommit connection with no transaction open.
        t_ms: UTC epoch ms; rows with ``t_ms < t_ms`` are deleted.

    Returns:
        The number of rows deleted.
    """
    with transaction(conn):
        deleted = conn.execute("DELETE FROM track_points WHERE t_ms < ?", (t_ms,)).rowcount
    logger.info("retention: deleted %d track points before t_ms=%d", deleted, t_ms)
    return deleted
