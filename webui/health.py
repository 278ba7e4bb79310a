"""The Health page: is the box seeing and storing what it should.

Cameras up or down and the age of their newest point, the coverage of the last
two hours, database size, free disk, sync lag, and the running box's frame rates
when it reports them.

The box's runtime may put an object with ``health_report() -> dict`` under
``app.extensions["footfall_health"]`` (:class:`appliance.box.health.Health`); its
per-camera ``fps`` and ``dropped_frames`` are then shown too.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app

from appliance.analytics.engine import BUCKET_MS
from local_db.observations import latest_camera_events, newest_point_per_camera
from vision.redaction import redact
from webui.auth import requires
from webui.blueprint import bp, render_page, scope
from webui.coverage_strip import coverage_strip
from webui.db import read_db
from webui.periods import fmt_day_time, local

logger = logging.getLogger(__name__)

RECENT_BUCKETS = 24  # the coverage strip: the last two hours
POINT_WINDOW_MS = 60_000  # how far back the newest point of each camera is looked for


@dataclass(frozen=True)
class CameraHealth:
    """One camera as the database (and the running box, if attached) sees it."""

    camera_id: str
    up: bool
    since: str | None
    detail: str
    last_point_age_s: float | None
    fps: float | None
    dropped: int | None


def camera_states(
    conn: sqlite3.Connection, camera_ids: list[str], now_ms: int
) -> dict[str, tuple[bool, int | None, str]]:
    """Each camera's latest event at ``now_ms``: (up, since, detail); up without events.

    The detail is redacted again: rows stored before redaction existed may hold a
    camera URL's password.
    """
    return {
        cam: (True, None, "") if ev is None else (ev[2] == "up", ev[1], redact(ev[3]))
        for cam, ev in latest_camera_events(conn, camera_ids, now_ms).items()
    }


def last_points(conn: sqlite3.Connection, now_ms: int) -> dict[str, int]:
    """The newest point per camera within the last minute (a bounded scan of the time index)."""
    return newest_point_per_camera(conn, now_ms - POINT_WINDOW_MS, now_ms)


def db_bytes(db: Path) -> int:
    """The database file and its WAL, in bytes."""
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def runtime_report() -> dict[str, Any] | None:
    """The running box's health report, if the runtime attached one."""
    health = current_app.extensions.get("footfall_health")
    if health is None:
        return None
    report: dict[str, Any] = health.health_report()
    return report


@bp.get("/health")
@requires("view")
def health() -> str:
    """Is the box seeing and storing what it should."""
    s = scope("1h")
    conn = read_db()
    ids = [c.id for c in s.config.cameras]
    states = camera_states(conn, ids, s.now_ms)
    points = last_points(conn, s.now_ms)
    report = runtime_report()
    live = report.get("cameras", {}) if report else {}
    cameras = []
    for cam in ids:
        up, since, detail = states[cam]
        rt = live.get(cam, {})
        cameras.append(
            CameraHealth(
                cam, up, None if since is None else fmt_day_time(local(since, s.tz)), detail,
                (s.now_ms - points[cam]) / 1000 if cam in points else None,
                rt.get("fps"), rt.get("dropped_frames"),
            )
        )  # fmt: skip
    t1 = s.closed_ms
    cov = coverage_strip(conn, s.store_id, t1 - RECENT_BUCKETS * BUCKET_MS, t1, t1, s.tz)
    db = Path(current_app.config["FOOTFALL_DB"])
    disk = shutil.disk_usage(db.parent)
    sync_lag = report.get("sync_lag_s") if report else None
    return render_page(
        "health.html", "health_fragment.html",
        s=s, cameras=cameras, cov=cov, db_mb=db_bytes(db) / 2**20, free_gb=disk.free / 2**30,
        free_pct=100 * disk.free / disk.total, sync_lag=sync_lag, report=report,
    )  # fmt: skip
