"""The schema as SQLite holds it, what each table means, and what of it may leave the box.

Three things live here, in one place, for ``footfall privacy-audit`` and its manifest
(``appliance/box/privacy.py``) and for the sync protocol to come:

* :data:`TABLES`: a short description of every table the migrations create, and of
  each column, with how long its rows are kept. ``tests/test_privacy_audit.py`` fails
  when a migration adds a table or column that is not described here.
* :data:`SYNCED_TABLES`: the tables a sync may send (every column of each, as the real
  schema has them); :data:`FORBIDDEN_FIELDS`: the column names that must never be among
  them (trajectories, pixels). When the ``wire`` package defines the sync messages,
  check its schemas against :data:`FORBIDDEN_FIELDS` here instead of the table names.
* Read-only queries over any database: its tables and columns (``sqlite_master``,
  ``PRAGMA table_info``), blob values, text that holds an encoded image, the track ids
  of each camera in the order they were first seen, the oldest track point.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TableDoc:
    """What a table holds, for people.

    Attributes:
        what: one line: what a row is.
        kept: how long rows are kept; ``{name}`` fields are filled from the config's
            values (``track_retention_hours``, ``session_hours``, ``session_idle_minutes``).
        columns: each column's meaning.
    """

    what: str
    kept: str
    columns: dict[str, str] = field(default_factory=dict)


_AGG_KEY: Final = {
    "store_id": "the store's id (store.id)",
    "bucket_ms": "start of the 5-minute bucket, UTC epoch ms",
}
_FOREVER_AGG: Final = "until deleted by hand (aggregates: counts, no person in them)"

#: Every table the migrations create, described (a table without an entry is reported).
TABLES: Final[dict[str, TableDoc]] = {
    "_migrations": TableDoc(
        "the schema migrations applied to this file",
        "for the life of the file",
        {"name": "migration name", "applied_at_utc": "when it was applied (ISO 8601, UTC)"},
    ),
    "track_points": TableDoc(
        "anonymous floor positions of tracked people (raw trajectories), one per person and "
        "frame; no image, no appearance",
        "{track_retention_hours:g} h (storage.track_retention_hours; deleted by the nightly "
        "maintenance at runtime.maintenance_at)",
        {
            "camera_id": "the camera that saw the person",
            "track_id": "random signed 64-bit id of one track (drawn per track from the OS "
            "entropy pool: not a counter, not shared across cameras or restarts)",
            "t_ms": "capture time, UTC epoch ms",
            "x_m": "floor position, metres from the plan's left edge",
            "y_m": "floor position, metres from the plan's top edge",
            "conf": "detector confidence 0..1",
        },
    ),
    "camera_events": TableDoc(
        "cameras going up or down (for coverage and camera-down alerts)",
        "until deleted by hand",
        {
            "camera_id": "the camera",
            "t_ms": "when, UTC epoch ms",
            "state": "up or down",
            "detail": "why (an error message, no image)",
        },
    ),
    "agg_windows": TableDoc(
        "per 5-minute bucket: camera coverage and the people counted",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "computed_at_ms": "when the bucket was analysed, UTC epoch ms",
            "coverage": "fraction of camera-time that was up",
            "status": "complete, partial or missing",
            "customers": "customers seen in the bucket",
            "staff": "staff seen in the bucket",
        },
    ),
    "agg_footfall": TableDoc(
        "line crossings per bucket, line and direction",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "line_id": "the counting line",
            "direction": "in or out",
            "count": "crossings",
        },
    ),
    "agg_occupancy": TableDoc(
        "people present per bucket and zone",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "zone_id": "the zone ('' = the whole store)",
            "mean": "mean people present",
            "max": "most people present at once",
        },
    ),
    "agg_dwell": TableDoc(
        "time spent per zone visit, per bucket",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "zone_id": "the zone",
            "visits": "visits that ended in the bucket",
            "total_s": "their total seconds",
            "p10_s": "10th percentile visit, seconds",
            "p50_s": "median visit, seconds",
            "p90_s": "90th percentile visit, seconds",
            "hist": "visit counts per duration bin (JSON)",
        },
    ),
    "agg_queue": TableDoc(
        "queue joins, services and waits per bucket and queue zone",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "zone_id": "the queue zone",
            "joined": "people who joined",
            "served": "people served",
            "abandoned": "people who left unserved",
            "wait_total_s": "their total wait, seconds",
            "mean_wait_s": "mean wait, seconds",
            "p90_wait_s": "90th percentile wait, seconds",
            "mean_len": "mean queue length",
            "max_len": "longest queue",
            "predicted_mae_s": "error of the predicted wait, seconds",
        },
    ),
    "agg_transitions": TableDoc(
        "moves from one zone to the next, per bucket",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "from_zone": "zone left",
            "to_zone": "zone entered",
            "count": "moves",
        },
    ),
    "agg_heatmap": TableDoc(
        "person-seconds per floor cell, per bucket",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "cell_x": "cell column on the plan grid",
            "cell_y": "cell row on the plan grid",
            "person_s": "person-seconds spent in the cell",
            "people": "distinct people in the cell (for k-anonymity suppression)",
        },
    ),
    "agg_funnel": TableDoc(
        "people reaching each funnel step, by the bucket they came in",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "step": "0 = came in, then each zone kind in order",
            "kind": "the step's zone kind",
            "people": "people reaching it",
        },
    ),
    "web_users": TableDoc(
        "dashboard accounts",
        "until the installer deletes the account",
        {
            "username": "login name",
            "password_hash": "scrypt hash (never the password)",
            "role": "staff, manager or installer",
            "created_ms": "when created, UTC epoch ms",
        },
    ),
    "web_settings": TableDoc(
        "the dashboard's own secrets",
        "for the life of the box",
        {
            "key": "secret_key (signs cookies) or setup_token_hash",
            "value": "its value (the setup token only as a hash)",
        },
    ),
    "agg_alerts": TableDoc(
        "alert summaries per bucket (what the hub gets of the alert log)",
        _FOREVER_AGG,
        {
            **_AGG_KEY,
            "rule_id": "the rule",
            "target": "zone or camera id ('' = store or box)",
            "kind": "what the rule measures",
            "severity": "info, warning or critical",
            "raised": "alerts raised in the bucket",
            "active_s": "seconds of the bucket an alert was active",
        },
    ),
    "alert_log": TableDoc(
        "alerts raised, cleared and acknowledged",
        "until deleted by hand",
        {
            "id": "alert number",
            "store_id": "the store",
            "rule_id": "the rule that raised it",
            "kind": "what was measured",
            "target": "zone or camera id ('' = store or box)",
            "severity": "info, warning or critical",
            "raised_ms": "when raised, UTC epoch ms",
            "cleared_ms": "when cleared (NULL while active)",
            "value": "the measured value when raised",
            "acked_by": "username who acknowledged it",
            "acked_ms": "when acknowledged",
            "message": "one line for people",
        },
    ),
    "web_sessions": TableDoc(
        "signed-in dashboard sessions",
        "{session_hours:g} h from sign-in at most, {session_idle_minutes:g} min unused "
        "(web.session_hours, web.session_idle_minutes)",
        {
            "id_hash": "sha256 of the cookie's random id (never the id)",
            "username": "whose session",
            "created_ms": "sign-in time, UTC epoch ms",
            "last_seen_ms": "last request, for the idle timeout",
            "expires_ms": "absolute end",
        },
    ),
    "web_login_failures": TableDoc(
        "failed sign-ins, for the login rate limit",
        "until the limiter's window has passed (minutes)",
        {
            "address": "client address (IPv6: its /64)",
            "username": "the name typed",
            "t_ms": "when, UTC epoch ms",
        },
    ),
    "bucket_revisions": TableDoc(
        "the hub sync's revision of each aggregate bucket per table (a rewrite bumps it, so "
        "the bucket is sent again)",
        "as long as the bucket has rows (replaced with them)",
        {
            "table_name": "the aggregate table (agg_*)",
            "store_id": "the store's id (store.id)",
            "bucket_ms": "start of the 5-minute bucket, UTC epoch ms",
            "rev": "the revision (from bucket_revision_seq; only grows)",
            "rows": "the bucket's rows in that table when written",
            "written_ms": "when it was written, UTC epoch ms (the sync lag)",
        },
    ),
    "bucket_revision_seq": TableDoc(
        "the last revision handed out to a bucket (one row)",
        "for the life of the file",
        {"id": "always 1", "rev": "the last revision"},
    ),
    "sync_marks": TableDoc(
        "the hub sync's high-water mark per table: acknowledged by the hub up to here",
        "for the life of the file (moved by each ack)",
        {
            "store_id": "the store's id (store.id)",
            "target": "the store's id at the hub (hub.store_id)",
            "table_name": "the aggregate table",
            "rev": "acknowledged up to this revision",
            "bucket_ms": "and, within it, this bucket",
        },
    ),
    "sync_pending": TableDoc(
        "the batch in flight to the hub (its id is re-sent until acknowledged)",
        "until the hub acknowledges it",
        {
            "store_id": "the store's id (store.id)",
            "target": "the store's id at the hub",
            "batch_id": "the batch id (the idempotency key)",
            "created_ms": "when it was built, UTC epoch ms",
            "bounds": "per table the revisions it covers (JSON)",
            "rows": "its rows when built",
            "attempts": "failed attempts so far",
        },
    ),
    "sync_state": TableDoc(
        "the hub sync's last ack, failures and backoff",
        "for the life of the file",
        {
            "store_id": "the store's id (store.id)",
            "target": "the store's id at the hub",
            "last_ack_ms": "when the hub last acknowledged a batch, UTC epoch ms",
            "last_ack_batch": "that batch's id",
            "failures": "failed attempts in a row",
            "retry_at_ms": "no attempt before this, UTC epoch ms (the backoff)",
            "error": "the last failure's reason (the hub's words; no secret)",
            "error_ms": "when, UTC epoch ms",
            "rejected": "1 if the hub refused the batch (needs a human)",
        },
    ),
    "sync_downlink": TableDoc(
        "items the hub sent down (config versions …), verified or rejected",
        "until deleted by hand",
        {
            "id": "row id",
            "target": "the store's id at the hub",
            "kind": "the item's kind",
            "item_id": "the item's id",
            "payload": "its content (JSON), only if its signature verified",
            "accepted": "1 if its signature verified",
            "reason": "why it was rejected",
            "received_ms": "when, UTC epoch ms",
        },
    ),
    "config_versions": TableDoc(
        "the store config versions the box ran: its own edits and the hub's",
        "until deleted by hand",
        {
            "id": "row id (the newest is the version in use)",
            "version": "the version's number",
            "parent": "the version it was edited from",
            "hash": "SHA-256 of the file",
            "source": "hub or box (an edit on the box)",
            "item_id": "the hub's downlink item it came in",
            "applied_ms": "when, UTC epoch ms",
        },
    ),
    "config_rejections": TableDoc(
        "config versions from the hub the box refused (the old one kept running)",
        "until deleted by hand",
        {
            "item_id": "the hub's downlink item",
            "version": "its version",
            "error": "why (FILE:LINE: key: message, or a conflict)",
            "rejected_ms": "when, UTC epoch ms",
        },
    ),
}

#: The tables a sync may send to the hub, every column as the schema has it (fnmatch).
SYNCED_TABLES: Final = "agg_*"


def _word(words: str) -> str:
    """A pattern for names holding one of ``words`` as a whole word (``crop``, ``face_crops``)."""
    return rf"(.*_)?({words})s?(_.*)?"


#: Column names of a person's path (a regular expression each, matched against the whole
#: lower-case name, and why): no table a sync sends may have one.
TRAJECTORY_FIELDS: Final[dict[str, str]] = {
    r"track_?id|person_?id|tracklet.*": "a track id (links positions into a person's path)",
    r"[xy](_m|_px|_pixels?)?": "a per-point position (a trajectory)",
    r"t_ms|timestamp_ms": "a per-point time (a trajectory)",
    r"traj.*|path|polyline|points?": "a trajectory",
}
#: Column names of pixels or of a person's appearance: no table at all may have one (a
#: word of the name, between underscores, singular or plural).
PIXEL_FIELDS: Final[dict[str, str]] = {
    r"bbox|box|xyxy|xywh": "an image box around a person",
    _word("image|img|frame|crop|snapshot|thumb|thumbnail|jpe?g|png|webp|pixel|video"): "pixels",
    _word("embedding|reid|re_id|feature|descriptor|face"): "an appearance feature of a person",
}
#: What never leaves the box: trajectories and pixels.
FORBIDDEN_FIELDS: Final[dict[str, str]] = {**TRAJECTORY_FIELDS, **PIXEL_FIELDS}


def forbidden_reason(name: str, fields: dict[str, str] = FORBIDDEN_FIELDS) -> str | None:
    """Why this column name may not leave the box, or None when it may.

    Args:
        name: a column (or payload field) name.
        fields: the patterns to match, with their reasons (default: all of them).
    """
    for pattern, why in fields.items():
        if re.fullmatch(pattern, name.lower()):
            return why
    return None


@dataclass(frozen=True, slots=True)
class Column:
    """One column as ``PRAGMA table_info`` has it."""

    name: str
    type: str
    primary_key: bool


def tables(conn: sqlite3.Connection) -> dict[str, list[Column]]:
    """Every table of the ``main`` database (not SQLite's own) with its columns, by name.

    Args:
        conn: Open connection (read-only is enough).
    """
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {
        name: [
            Column(str(r[1]), str(r[2]).upper(), bool(r[5]))
            for r in conn.execute(f'PRAGMA table_info("{_quoted(name)}")')
        ]
        for name in names
    }


def synced(names: list[str]) -> list[str]:
    """The tables among ``names`` that a sync may send (:data:`SYNCED_TABLES`)."""
    return [name for name in names if fnmatch.fnmatchcase(name, SYNCED_TABLES)]


def _quoted(name: str) -> str:
    return name.replace('"', '""')


def blob_values(conn: sqlite3.Connection, table: str, columns: list[str]) -> dict[str, int]:
    """How many values of each column are stored as blobs (one scan of the table).

    Args:
        conn: Open connection.
        table: the table.
        columns: its columns.

    Returns:
        Column → number of blob values, for the columns that have any.
    """
    sums = ", ".join(f"""sum(typeof("{_quoted(c)}") = 'blob')""" for c in columns)
    row = conn.execute(f'SELECT {sums} FROM "{_quoted(table)}"').fetchone()
    return {c: int(n) for c, n in zip(columns, row, strict=True) if n}


#: text shorter than this (in bytes: ``length()`` of text stops at a NUL) holds no image
MIN_ENCODED_BYTES: Final = 32


def encoded_texts(
    conn: sqlite3.Connection,
    table: str,
    columns: list[str],
    looks_encoded: Callable[[bytes], str | None],
    limit: int = 5,
) -> list[tuple[str, str]]:
    """Text values that hold an encoded image (base64, a data: URL, raw JPEG bytes).

    Every text value of at least :data:`MIN_ENCODED_BYTES` bytes is passed to
    ``looks_encoded`` as its bytes (raw JPEG bytes are not UTF-8; shorter values are
    skipped inside SQLite).

    Args:
        conn: Open connection.
        table: the table.
        columns: its columns.
        looks_encoded: what a value holds (``"base64 JPEG"``), or None when nothing.
        limit: report at most this many values.

    Returns:
        ``(column, what)`` pairs, at most ``limit``.
    """
    conn.create_function("footfall_encoded", 1, looks_encoded, deterministic=True)
    found: list[tuple[str, str]] = []
    for column in columns:
        col = f'"{_quoted(column)}"'
        rows = conn.execute(
            f'SELECT footfall_encoded(CAST({col} AS BLOB)) AS what FROM "{_quoted(table)}" '
            f"WHERE typeof({col}) = 'text' AND length(CAST({col} AS BLOB)) >= ? "
            "AND what IS NOT NULL LIMIT ?",
            (MIN_ENCODED_BYTES, limit - len(found)),
        )
        found += [(column, str(row[0])) for row in rows]
        if len(found) >= limit:
            break
    return found


def first_seen_track_ids(conn: sqlite3.Connection, per_camera: int = 1000) -> dict[str, list[int]]:
    """Each camera's track ids in the order they were first seen (its first ``per_camera``).

    Args:
        conn: Open connection.
        per_camera: at most this many ids per camera.
    """
    cameras = [str(r[0]) for r in conn.execute("SELECT DISTINCT camera_id FROM track_points")]
    return {
        camera: [
            int(r[0])
            for r in conn.execute(
                "SELECT track_id FROM track_points WHERE camera_id = ? GROUP BY track_id "
                "ORDER BY min(t_ms), track_id LIMIT ?",
                (camera, per_camera),
            )
        ]
        for camera in cameras
    }


def oldest_track_point(conn: sqlite3.Connection) -> tuple[str, int] | None:
    """The camera and UTC ms of the oldest track point, or None when there is none.

    Args:
        conn: Open connection.
    """
    row = conn.execute("SELECT camera_id, t_ms FROM track_points ORDER BY t_ms LIMIT 1").fetchone()
    return None if row is None else (str(row[0]), int(row[1]))
