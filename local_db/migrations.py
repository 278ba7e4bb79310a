"""Forward-only schema migrations.

A migration is a function registered with :func:`migration` under a name that
sorts in the order it must run (``"0001_track_points"``, ``"0002_..."``).
:func:`migrate` applies the pending ones, each in its own ``BEGIN IMMEDIATE``
transaction, and records them in ``_migrations``. Before touching a database
that already holds a schema it copies it to ``<db>.bak-<first pending name>``.

A migration must only execute statements on the connection it is given: no
``executescript`` (which commits), no ``BEGIN``/``COMMIT`` of its own.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from local_db.connection import transaction

logger = logging.getLogger(__name__)

MigrationFn = Callable[[sqlite3.Connection], None]

#: All registered migrations by name. Tests may add and remove entries.
MIGRATIONS: dict[str, MigrationFn] = {}


class MigrationError(RuntimeError):
    """A migration (or the backup before it) failed; its transaction was rolled back."""

    def __init__(self, migration_name: str, message: str) -> None:
        super().__init__(f"migration {migration_name!r} failed: {message}")
        self.migration_name = migration_name


def migration(name: str) -> Callable[[MigrationFn], MigrationFn]:
    """Register the decorated function as the migration called ``name``.

    Args:
        name: Unique name; migrations run in the sort order of their names.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ValueError: A migration with this name is already registered.
    """

    def register(fn: MigrationFn) -> MigrationFn:
        if name in MIGRATIONS:
            raise ValueError(f"migration {name!r} is already registered")
        MIGRATIONS[name] = fn
        return fn

    return register


def _database_file(conn: sqlite3.Connection) -> Path | None:
    """Return the file of the ``main`` database, or None for in-memory/temp ones."""
    for _seq, schema, filename in conn.execute("PRAGMA database_list"):
        if schema == "main":
            return Path(filename) if filename else None
    return None


def _backup(conn: sqlite3.Connection, db_file: Path, migration_name: str) -> Path:
    """Copy the database with the online backup API to ``<db>.bak-<migration_name>``."""
    target = db_file.with_name(f"{db_file.name}.bak-{migration_name}")
    try:
        with closing(sqlite3.connect(target)) as dst:
            conn.backup(dst)
    except sqlite3.Error as exc:
        raise MigrationError(migration_name, f"backup of {db_file} to {target}: {exc}") from exc
    logger.info("backed up %s to %s before migrating", db_file, target)
    return target


def _apply(conn: sqlite3.Connection, name: str, fn: MigrationFn) -> bool:
    """Apply one migration in its own transaction; False if another process did it first."""
    try:
        with transaction(conn):
            # Re-check under the write lock: a second process may have migrated meanwhile.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                return False
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at_utc) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="milliseconds")),
            )
    except Exception as exc:
        raise MigrationError(name, f"{type(exc).__name__}: {exc}") from exc
    return True


def applied_migrations(conn: sqlite3.Connection) -> set[str]:
    """The names recorded in ``_migrations`` (empty for a database never migrated).

    Args:
        conn: Open connection (read-only is enough).
    """
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    if not has_table:
        return set()
    return {str(row[0]) for row in conn.execute("SELECT name FROM _migrations")}


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every registered migration not yet recorded in ``_migrations``.

    Migrations run in name order, each in its own transaction. Running it again
    does nothing.

    Args:
        conn: An autocommit connection (as made by :func:`local_db.connect`)
            with no transaction open.

    Returns:
        The names of the migrations applied by this call, in order.

    Raises:
        ValueError: ``conn`` has a transaction open.
        MigrationError: The backup or a migration failed; that migration was
            rolled back, the ones before it stay applied.
    """
    if conn.in_transaction:
        raise ValueError("migrate() needs a connection with no open transaction")
    had_schema = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at_utc TEXT)"
    )
    applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    unknown = sorted(applied - MIGRATIONS.keys())
    if unknown:
        logger.warning("database records migrations this code does not know: %s", unknown)
    pending = sorted(MIGRATIONS.keys() - applied)
    if not pending:
        return []

    db_file = _database_file(conn)
    if had_schema and db_file is not None:
        _backup(conn, db_file, pending[0])

    done: list[str] = []
    for name in pending:
        logger.info("applying migration %s", name)
        if _apply(conn, name, MIGRATIONS[name]):
            done.append(name)
    if done:
        # The schema's pages now sit in the write-ahead log, several times over on
        # a fresh box; fold them into the database so the log starts empty.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return done


@migration("0001_track_points")
def _m0001_track_points(conn: sqlite3.Connection) -> None:
    """Create ``track_points`` and ``camera_events`` with their indexes."""
    conn.execute(
        """
        CREATE TABLE track_points (
            camera_id TEXT NOT NULL,
            track_id INTEGER NOT NULL,  -- random signed 64-bit id
            t_ms INTEGER NOT NULL,      -- UTC epoch milliseconds
            x_m REAL NOT NULL,
            y_m REAL NOT NULL,
            conf REAL NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX idx_track_points_t_ms ON track_points (t_ms)")
    conn.execute(
        "CREATE INDEX idx_track_points_camera_track_t ON track_points (camera_id, track_id, t_ms)"
    )
    conn.execute(
        """
        CREATE TABLE camera_events (
            camera_id TEXT NOT NULL,
            t_ms INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('up', 'down')),
            detail TEXT NOT NULL DEFAULT ''
        )
        """
    )
    conn.execute("CREATE INDEX idx_camera_events_camera_t ON camera_events (camera_id, t_ms)")


@migration("0002_aggregates")
def _m0002_aggregates(conn: sqlite3.Connection) -> None:
    """Aggregate tables keyed by (store_id, bucket_ms, dimensions): resends are upserts."""
    for ddl in (
        """CREATE TABLE agg_windows (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
            computed_at_ms INTEGER NOT NULL,
            coverage REAL NOT NULL,          -- fraction of camera-time that was up
            status TEXT NOT NULL CHECK (status IN ('complete', 'partial', 'missing')),
            customers INTEGER NOT NULL, staff INTEGER NOT NULL,
            PRIMARY KEY (store_id, bucket_ms)) WITHOUT ROWID""",
        """CREATE TABLE agg_footfall (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL, line_id TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')), count INTEGER NOT NULL,
            PRIMARY KEY (store_id, bucket_ms, line_id, direction)) WITHOUT ROWID""",
        """CREATE TABLE agg_occupancy (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
            zone_id TEXT NOT NULL,           -- '' is the whole store
            mean REAL NOT NULL, max INTEGER NOT NULL,
            PRIMARY KEY (store_id, bucket_ms, zone_id)) WITHOUT ROWID""",
        """CREATE TABLE agg_dwell (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL, zone_id TEXT NOT NULL,
            visits INTEGER NOT NULL, total_s REAL NOT NULL,
            p10_s REAL, p50_s REAL, p90_s REAL,
            hist TEXT NOT NULL,              -- JSON counts per DWELL_BINS_S bin
            PRIMARY KEY (store_id, bucket_ms, zone_id)) WITHOUT ROWID""",
        """CREATE TABLE agg_queue (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL, zone_id TEXT NOT NULL,
            joined INTEGER NOT NULL, served INTEGER NOT NULL, abandoned INTEGER NOT NULL,
            wait_total_s REAL NOT NULL, mean_wait_s REAL, p90_wait_s REAL,
            mean_len REAL NOT NULL, max_len INTEGER NOT NULL, predicted_mae_s REAL,
            PRIMARY KEY (store_id, bucket_ms, zone_id)) WITHOUT ROWID""",
        """CREATE TABLE agg_transitions (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
            from_zone TEXT NOT NULL, to_zone TEXT NOT NULL, count INTEGER NOT NULL,
            PRIMARY KEY (store_id, bucket_ms, from_zone, to_zone)) WITHOUT ROWID""",
        """CREATE TABLE agg_heatmap (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
            cell_x INTEGER NOT NULL, cell_y INTEGER NOT NULL, person_s REAL NOT NULL,
            people INTEGER NOT NULL,          -- distinct people in the cell (for k-suppression)
            PRIMARY KEY (store_id, bucket_ms, cell_x, cell_y)) WITHOUT ROWID""",
    ):
        conn.execute(ddl)


@migration("0003_funnels")
def _m0003_funnels(conn: sqlite3.Connection) -> None:
    """Ordered funnels: people reaching each step, by the bucket they came in."""
    conn.execute(
        """CREATE TABLE agg_funnel (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
            step INTEGER NOT NULL,            -- 0 = came in, then each zone kind in order
            kind TEXT NOT NULL, people INTEGER NOT NULL,
            PRIMARY KEY (store_id, bucket_ms, step)) WITHOUT ROWID"""
    )


@migration("0004_accounts")
def _m0004_accounts(conn: sqlite3.Connection) -> None:
    """Dashboard accounts (hashed passwords, one role each) and the web UI's settings."""
    conn.execute(
        """CREATE TABLE web_users (
            username TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,      -- werkzeug scrypt, never the password
            role TEXT NOT NULL CHECK (role IN ('staff', 'manager', 'installer')),
            created_ms INTEGER NOT NULL) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE web_settings (
            key TEXT PRIMARY KEY,             -- 'secret_key', 'setup_token_hash'
            value TEXT NOT NULL) WITHOUT ROWID"""
    )


@migration("0005_alerts")
def _m0005_alerts(conn: sqlite3.Connection) -> None:
    """The alert log: one row per alert raised, updated when it clears or is acknowledged."""
    conn.execute(
        """CREATE TABLE alert_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            store_id TEXT NOT NULL, rule_id TEXT NOT NULL, kind TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',  -- zone or camera id; '' = store / box
            severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            raised_ms INTEGER NOT NULL, cleared_ms INTEGER,  -- NULL while active
            value REAL,                       -- the measured value when raised
            acked_by TEXT, acked_ms INTEGER,
            message TEXT NOT NULL DEFAULT '')"""
    )
    conn.execute("CREATE INDEX idx_alert_log_raised ON alert_log (store_id, raised_ms)")
    conn.execute(
        "CREATE UNIQUE INDEX idx_alert_log_active ON alert_log (store_id, rule_id, target) "
        "WHERE cleared_ms IS NULL"
    )


@migration("0006_web_sessions")
def _m0006_web_sessions(conn: sqlite3.Connection) -> None:
    """Server-side dashboard sessions and the failed sign-ins the login limiter counts."""
    conn.execute(
        """CREATE TABLE web_sessions (
            id_hash TEXT PRIMARY KEY,         -- sha256 of the cookie's random id, never the id
            username TEXT NOT NULL REFERENCES web_users (username) ON DELETE CASCADE,
            created_ms INTEGER NOT NULL,
            last_seen_ms INTEGER NOT NULL,    -- for the idle timeout
            expires_ms INTEGER NOT NULL       -- absolute: sign-in + web.session_hours, never moved
            ) WITHOUT ROWID"""
    )
    conn.execute("CREATE INDEX idx_web_sessions_username ON web_sessions (username)")
    conn.execute(
        """CREATE TABLE web_login_failures (
            address TEXT NOT NULL,            -- client address (IPv6: its /64)
            username TEXT NOT NULL,           -- as typed; '(setup)' for the setup token
            t_ms INTEGER NOT NULL)"""
    )
    conn.execute("CREATE INDEX idx_web_login_failures_address ON web_login_failures (address)")
    conn.execute("CREATE INDEX idx_web_login_failures_username ON web_login_failures (username)")
    conn.execute("CREATE INDEX idx_web_login_failures_t ON web_login_failures (t_ms)")


@migration("0007_sync")
def _m0007_sync(conn: sqlite3.Connection) -> None:
    """The hub sync's outbox: bucket revisions, high-water marks, the pending batch, downlink.

    ``bucket_revisions`` has one row per (aggregate table, store, bucket) with rows, whose
    ``rev`` comes from ``bucket_revision_seq`` (it only grows) and is bumped by every
    rewrite (``local_db.aggregates.replace_buckets``); the buckets already analysed get
    ``rev`` 1 here, so they are sent too.
    """
    conn.execute(
        """CREATE TABLE bucket_revisions (
            table_name TEXT NOT NULL, store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
            rev INTEGER NOT NULL,             -- from bucket_revision_seq: grows with each write
            rows INTEGER NOT NULL,            -- the bucket's rows in that table when written
            written_ms INTEGER NOT NULL,      -- when (UTC ms), for the sync lag
            PRIMARY KEY (table_name, store_id, bucket_ms)) WITHOUT ROWID"""
    )
    conn.execute(
        "CREATE INDEX idx_bucket_revisions_rev ON bucket_revisions (store_id, table_name, rev)"
    )
    conn.execute(
        """CREATE TABLE bucket_revision_seq (
            id INTEGER PRIMARY KEY CHECK (id = 1), rev INTEGER NOT NULL)"""
    )
    conn.execute("INSERT INTO bucket_revision_seq (id, rev) VALUES (1, 1)")
    now_ms = round(datetime.now(UTC).timestamp() * 1000)
    for table in ("agg_windows", "agg_footfall", "agg_dwell", "agg_occupancy", "agg_queue",
                  "agg_transitions", "agg_funnel", "agg_heatmap"):  # fmt: skip
        conn.execute(
            "INSERT INTO bucket_revisions (table_name, store_id, bucket_ms, rev, rows, written_ms) "
            f"SELECT ?, store_id, bucket_ms, 1, count(*), ? FROM {table} "
            "GROUP BY store_id, bucket_ms",
            (table, now_ms),
        )
    conn.execute(
        """CREATE TABLE sync_marks (
            store_id TEXT NOT NULL,           -- the box's store (its rows)
            target TEXT NOT NULL,             -- the hub's store id they are sent as
            table_name TEXT NOT NULL,
            rev INTEGER NOT NULL, bucket_ms INTEGER NOT NULL,  -- acknowledged up to here
            PRIMARY KEY (store_id, target, table_name)) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE sync_pending (
            store_id TEXT NOT NULL, target TEXT NOT NULL,
            batch_id TEXT NOT NULL, created_ms INTEGER NOT NULL,
            bounds TEXT NOT NULL,  -- JSON {table: [after_rev, after_bucket, upto_rev, upto_bucket]}
            rows INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (store_id, target)) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE sync_state (
            store_id TEXT NOT NULL, target TEXT NOT NULL,
            last_ack_ms INTEGER, last_ack_batch TEXT,
            failures INTEGER NOT NULL DEFAULT 0,   -- consecutive failed attempts (the backoff)
            retry_at_ms INTEGER,              -- no attempt before this (backing off)
            error TEXT, error_ms INTEGER,     -- the last failure's reason (NULL once acked)
            rejected INTEGER NOT NULL DEFAULT 0,  -- the last failure was a 4xx: needs a human
            PRIMARY KEY (store_id, target)) WITHOUT ROWID"""
    )
    conn.execute(
        """CREATE TABLE sync_downlink (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            target TEXT NOT NULL, kind TEXT NOT NULL, item_id TEXT NOT NULL,
            payload TEXT,                     -- JSON, only of an accepted item
            accepted INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '',
            received_ms INTEGER NOT NULL)"""
    )


@migration("0008_alert_summaries")
def _m0008_alert_summaries(conn: sqlite3.Connection) -> None:
    """Alert summaries per 5-minute bucket, the aggregate the hub gets of ``alert_log``.

    One row per (bucket, rule, target) an alert was active in: how many were raised in
    the bucket and for how many seconds one was active in it. The free-text message and
    the acknowledging user stay in ``alert_log``, on the box.
    """
    conn.execute(
        """CREATE TABLE agg_alerts (
            store_id TEXT NOT NULL, bucket_ms INTEGER NOT NULL,
            rule_id TEXT NOT NULL, target TEXT NOT NULL,  -- '' = the store or the box
            kind TEXT NOT NULL,
            severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            raised INTEGER NOT NULL,          -- alerts raised in the bucket
            active_s REAL NOT NULL,           -- seconds of the bucket an alert was active
            PRIMARY KEY (store_id, bucket_ms, rule_id, target)) WITHOUT ROWID"""
    )


@migration("0009_fleet")
def _m0009_fleet(conn: sqlite3.Connection) -> None:
    """The config versions the box ran (its own edits and the hub's) and the hub's it refused."""
    conn.execute(
        """CREATE TABLE config_versions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            version INTEGER NOT NULL,         -- the newest row is the version in use
            parent INTEGER,                   -- the version it was edited from
            hash TEXT NOT NULL,               -- SHA-256 of the file's bytes
            source TEXT NOT NULL CHECK (source IN ('hub', 'box')),
            item_id TEXT,                     -- the hub's downlink item it came in (hub)
            applied_ms INTEGER NOT NULL)"""
    )
    conn.execute(
        """CREATE TABLE config_rejections (
            item_id TEXT PRIMARY KEY,         -- the hub's downlink item
            version INTEGER NOT NULL,
            error TEXT NOT NULL,              -- FILE:LINE: key: message, or the conflict
            rejected_ms INTEGER NOT NULL) WITHOUT ROWID"""
    )
