"""The box's local SQLite store.

Track points (anonymous floor positions, never images) and camera up/down
events live in one SQLite file in WAL mode, so that the web UI and the sync
job can read while the vision pipeline writes.

* :func:`connect` opens a connection with the standard pragmas (WAL,
  ``busy_timeout``, ``synchronous=NORMAL``, foreign keys, autocommit).
* :func:`transaction` is every write's transaction (``BEGIN IMMEDIATE`` …
  ``COMMIT``, ``ROLLBACK`` on error); :mod:`local_db.durable` is every durable
  file write (``atomic_write``).
* :func:`migrate` applies the forward-only schema migrations.
* :class:`DbWriter` is the one writer: a thread fed by a bounded queue that
  commits batches and retries on errors instead of dropping data.
* :func:`read_track_points`, :func:`count_track_points`,
  :func:`camera_events` and :func:`delete_track_points_before` are typed
  queries on any connection.
"""

from local_db.connection import connect, transaction
from local_db.migrations import MigrationError, migrate, migration
from local_db.track_points import (
    CameraEventRow,
    TrackPointRow,
    camera_events,
    count_track_points,
    delete_track_points_before,
    read_track_points,
)
from local_db.writer import DbWriter

__all__ = [
    "CameraEventRow",
    "DbWriter",
    "MigrationError",
    "TrackPointRow",
    "camera_events",
    "connect",
    "count_track_points",
    "delete_track_points_before",
    "migrate",
    "migration",
    "read_track_points",
    "transaction",
]
