"""What the cameras observed, read as the analytics, the live state and the health page need it.

Track points come back as DataFrames (``camera_id, track_id, t_ms, x_m, y_m``, and
``rowid`` for the live state's incremental reads); camera up/down events as plain
tuples. Time ranges are half-open (``t0_ms <= t_ms < t1_ms``) unless said otherwise.
(:mod:`local_db.track_points` has the row-by-row reads and the retention delete.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import pandas as pd

from local_db.track_points import CameraEventRow

_POINT_COLUMNS = "camera_id, track_id, t_ms, x_m, y_m"
_LIVE_COLUMNS = f"rowid, {_POINT_COLUMNS}"


def points_between(conn: sqlite3.Connection, t0_ms: int, t1_ms: int) -> pd.DataFrame:
    """Track points of ``[t0, t1)`` ordered by time: ``camera_id, track_id, t_ms, x_m, y_m``.

    Args:
        conn: Open connection.
        t0_ms: Start (UTC ms, inclusive).
        t1_ms: End (exclusive).

    Returns:
        The points (the analytics engine's input).
    """
    return pd.read_sql_query(
        f"SELECT {_POINT_COLUMNS} FROM track_points WHERE t_ms >= ? AND t_ms < ? ORDER BY t_ms",
        conn,
        params=(t0_ms, t1_ms),
    )


def first_point_since(conn: sqlite3.Connection, t_ms: int) -> int | None:
    """The time of the oldest track point at or after ``t_ms`` (UTC ms), or None.

    Args:
        conn: Open connection.
        t_ms: UTC ms.

    Returns:
        Its ``t_ms``, or None when no point is that recent.
    """
    row = conn.execute("SELECT min(t_ms) FROM track_points WHERE t_ms >= ?", (t_ms,)).fetchone()
    return None if row[0] is None else int(row[0])


def count_points_between(conn: sqlite3.Connection, t0_ms: int, t1_ms: int) -> int:
    """How many track points lie in ``[t0, t1)``.

    Args:
        conn: Open connection.
        t0_ms: Start (UTC ms, inclusive).
        t1_ms: End (exclusive).

    Returns:
        The number of points.
    """
    row = conn.execute(
        "SELECT count(*) FROM track_points WHERE t_ms >= ? AND t_ms < ?", (t0_ms, t1_ms)
    ).fetchone()
    return int(row[0])


def newest_rowid(conn: sqlite3.Connection) -> int:
    """The largest ``rowid`` of ``track_points`` (0 when it is empty).

    Args:
        conn: Open connection.

    Returns:
        The rowid: points written later have larger ones.
    """
    return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM track_points").fetchone()[0])


def points_since(conn: sqlite3.Connection, t_ms: int, upto_rowid: int) -> pd.DataFrame:
    """Points at or after ``t_ms`` written up to ``upto_rowid``: ``rowid, camera_id, …, y_m``.

    Args:
        conn: Open connection.
        t_ms: UTC ms (inclusive).
        upto_rowid: The newest rowid read (inclusive; see :func:`newest_rowid`).

    Returns:
        The points, in no particular order.
    """
    return pd.read_sql_query(
        f"SELECT {_LIVE_COLUMNS} FROM track_points WHERE t_ms >= ? AND rowid <= ?",
        conn,
        params=(t_ms, upto_rowid),
    )


def points_written_after(
    conn: sqlite3.Connection, after_rowid: int, upto_rowid: int
) -> pd.DataFrame:
    """Points with ``after_rowid < rowid <= upto_rowid``: ``rowid, camera_id, …, y_m``.

    Args:
        conn: Open connection.
        after_rowid: The newest rowid already read (exclusive).
        upto_rowid: The newest rowid to read (inclusive).

    Returns:
        The points written in between, in no particular order.
    """
    return pd.read_sql_query(
        f"SELECT {_LIVE_COLUMNS} FROM track_points WHERE rowid > ? AND rowid <= ?",
        conn,
        params=(after_rowid, upto_rowid),
    )


def newest_point_per_camera(
    conn: sqlite3.Connection, after_ms: int, upto_ms: int
) -> dict[str, int]:
    """The newest point's time per camera within ``(after_ms, upto_ms]`` (a bounded scan).

    Args:
        conn: Open connection.
        after_ms: UTC ms (exclusive).
        upto_ms: UTC ms (inclusive).

    Returns:
        Camera id → UTC ms, for the cameras with points in the range.
    """
    rows = conn.execute(
        "SELECT camera_id, max(t_ms) FROM track_points WHERE t_ms > ? AND t_ms <= ? GROUP BY 1",
        (after_ms, upto_ms),
    ).fetchall()
    return {str(cam): int(t) for cam, t in rows}


def camera_history(
    conn: sqlite3.Connection, camera_id: str, before_ms: int
) -> list[tuple[int, str]]:
    """A camera's up/down events before ``before_ms``, oldest first: ``(t_ms, state)``.

    Args:
        conn: Open connection.
        camera_id: The camera.
        before_ms: UTC ms (exclusive).

    Returns:
        The events (ties in time in the order they were written).
    """
    rows = conn.execute(
        "SELECT t_ms, state FROM camera_events WHERE camera_id = ? AND t_ms < ? "
        "ORDER BY t_ms, rowid",
        (camera_id, before_ms),
    ).fetchall()
    return [(int(t), str(state)) for t, state in rows]


def latest_camera_events(
    conn: sqlite3.Connection, camera_ids: Iterable[str], at_ms: int
) -> dict[str, CameraEventRow | None]:
    """Each camera's latest up/down event at or before ``at_ms`` (the last written on a tie).

    Args:
        conn: Open connection.
        camera_ids: The cameras.
        at_ms: UTC ms (inclusive).

    Returns:
        Camera id → ``(camera_id, t_ms, state, detail)``, or None for a camera without events.
    """
    out: dict[str, CameraEventRow | None] = {}
    for cam in camera_ids:
        row = conn.execute(
            "SELECT camera_id, t_ms, state, detail FROM camera_events "
            "WHERE camera_id = ? AND t_ms <= ? ORDER BY t_ms DESC, rowid DESC LIMIT 1",
            (cam, at_ms),
        ).fetchone()
        out[cam] = None if row is None else (str(row[0]), int(row[1]), str(row[2]), str(row[3]))
    return out
