"""The single writer thread of the box's database.

Every write goes through one :class:`DbWriter`: producers put batches on a
bounded queue and one thread (``footfall-db-writer``) commits whatever is
queued in a single transaction. Nothing is dropped: producers block when the
queue is full, and a failed transaction (database locked, disk full, I/O
error) is logged, kept in :attr:`DbWriter.last_error` and retried with
exponential backoff until it commits, or until the owner gives up with
:meth:`DbWriter.abort`.

Every submission returns a ticket, and batches commit in ticket order, so a
producer can tell what of its own work is committed (:attr:`DbWriter.committed_batches`)
rather than what it handed over.
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self, SupportsFloat, SupportsIndex

from local_db.connection import DEFAULT_BUSY_TIMEOUT_MS, connect, transaction
from local_db.migrations import migrate
from local_db.track_points import CameraEventRow, TrackPointRow
from vision.redaction import redact

logger = logging.getLogger(__name__)

THREAD_NAME: Final = "footfall-db-writer"
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_INSERT_POINTS: Final = (
    "INSERT INTO track_points (camera_id, track_id, t_ms, x_m, y_m, conf) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT: Final = (
    "INSERT INTO camera_events (camera_id, t_ms, state, detail) VALUES (?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class _Points:
    rows: list[TrackPointRow]


@dataclass(frozen=True, slots=True)
class _Event:
    row: CameraEventRow


class _Stop:
    pass


_Item = _Points | _Event | _Stop


def _int64(value: object, what: str) -> int:
    if not isinstance(value, SupportsIndex):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    number = operator.index(value)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"{what}={number} is outside the signed 64-bit range")
    return number


def _finite(value: object, what: str) -> float:
    if not isinstance(value, SupportsFloat):
        raise ValueError(f"{what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what}={number} is not finite")
    return number


def _normalise_point(row: Sequence[object]) -> TrackPointRow:
    """Check one row and convert it to plain Python types (numpy scalars, NamedTuples)."""
    if len(row) != 6:
        raise ValueError(f"expected 6 fields, got {len(row)}")
    camera_id, track_id, t_ms, x_m, y_m, conf = row
    if not isinstance(camera_id, str) or not camera_id:
        raise ValueError(f"camera_id must be a non-empty str, got {camera_id!r}")
    return (
        camera_id,
        _int64(track_id, "track_id"),
        _int64(t_ms, "t_ms"),
        _finite(x_m, "x_m"),
        _finite(y_m, "y_m"),
        _finite(conf, "conf"),
    )


class DbWriter:
    """Own the database's only write connection and its writer thread.

    Use as ``with DbWriter(path) as db: db.submit_points(rows)``, or call
    :meth:`start` and :meth:`close` yourself. ``submit_*`` validate their
    arguments in the caller's thread (raising ``ValueError``) and may be
    called from any thread.
    """

    MAX_QUEUED_BATCHES: Final = 10_000
    MAX_BATCHES_PER_TRANSACTION: Final = 1_000
    RETRY_INITIAL_S: Final = 0.05
    RETRY_MAX_S: Final = 5.0

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        max_queued_batches: int = MAX_QUEUED_BATCHES,
    ) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=max_queued_batches)
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        # Held while putting on the queue, so that _submitted counts queue items in order.
        self._submit_lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._submitted = 0
        # Guards and signals _committed, _rows_written, _last_error.
        self._state = threading.Condition()
        self._committed = 0
        self._rows_written = 0
        self._last_error: BaseException | None = None
        self._failing_since: float | None = None
        self._abort = threading.Event()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def rows_written(self) -> int:
        """Track-point and camera-event rows committed so far."""
        with self._state:
            return self._rows_written

    @property
    def committed_batches(self) -> int:
        """Submissions committed so far: every ticket up to this one is in the database."""
        with self._state:
            return self._committed

    @property
    def failing_since(self) -> float | None:
        """``time.monotonic()`` of the first failed try of the write being retried, or None."""
        with self._state:
            return self._failing_since

    @property
    def last_error(self) -> BaseException | None:
        """The most recent write error (kept after a retry succeeds), or None."""
        with self._state:
            return self._last_error

    def start(self) -> None:
        """Open the connection, apply pending migrations and start the writer thread.

        Raises:
            RuntimeError: Already started, or closed.
            sqlite3.Error: The database cannot be opened.
            local_db.migrations.MigrationError: A migration failed.
        """
        if self._thread is not None or self._closing:
            raise RuntimeError(f"DbWriter for {self._path} was already started")
        conn = connect(self._path, busy_timeout_ms=self._busy_timeout_ms)
        try:
            applied = migrate(conn)
        except BaseException:
            conn.close()
            raise
        if applied:
            logger.info("applied migrations %s to %s", applied, self._path)
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def submit_points(self, rows: Sequence[tuple[str, int, int, float, float, float]]) -> int:
        """Queue track points for writing; blocks while the queue is full.

        Args:
            rows: ``(camera_id, track_id, t_ms, x_m, y_m, conf)`` tuples (or
                NamedTuples); ``track_id`` and ``t_ms`` signed 64-bit, the
                floats finite. An empty sequence is ignored.

        Returns:
            The batch's ticket: it is committed once :attr:`committed_batches`
            reaches it (0 for an empty sequence).

        Raises:
            ValueError: A row is malformed; nothing of the batch is queued.
            RuntimeError: The writer is not running.
        """
        batch: list[TrackPointRow] = []
        for i, row in enumerate(rows):
            try:
                batch.append(_normalise_point(row))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"track point {i} {row!r}: {exc}") from exc
        return self._enqueue(_Points(batch)) if batch else 0

    def submit_camera_state(
        self, camera_id: str, t_ms: int, state: Literal["up", "down"], detail: str = ""
    ) -> int:
        """Queue a camera up/down event; blocks while the queue is full.

        Args:
            camera_id: The camera.
            t_ms: UTC epoch milliseconds.
            state: ``"up"`` or ``"down"``.
            detail: Free text, e.g. the error that took the camera down; stored
                redacted (no URL password or token).

        Returns:
            The event's ticket (see :meth:`submit_points`).

        Raises:
            ValueError: Bad ``state``, ``t_ms`` or ``camera_id``.
            RuntimeError: The writer is not running.
        """
        if state not in ("up", "down"):
            raise ValueError(f"camera {camera_id!r}: state must be 'up' or 'down', got {state!r}")
        if not isinstance(camera_id, str) or not camera_id:
            raise ValueError(f"camera_id must be a non-empty str, got {camera_id!r}")
        return self._enqueue(_Event((camera_id, _int64(t_ms, "t_ms"), state, redact(str(detail)))))

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything submitted before this call is committed.

        Args:
            timeout: Seconds to wait.

        Raises:
            TimeoutError: Not everything was committed in time (see
                :attr:`last_error` for why).
        """
        target = self._submitted
        with self._state:
            if not self._state.wait_for(lambda: self._committed >= target, timeout):
                raise TimeoutError(
                    f"DbWriter for {self._path}: {target - self._committed} batches still "
                    f"uncommitted after {timeout}s; last error: {self._last_error!r}"
                )

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new submissions, flush, stop the thread and close the connection.

        Calling it again, or on a writer never started, does nothing.

        Args:
            timeout: Seconds to wait for the flush, and again for the thread.

        Raises:
            TimeoutError: The queue could not be committed in time; the writer
                keeps retrying and ``close`` may be called again.
        """
        if self._closed:
            return
        if not self._submit_lock.acquire(timeout=timeout):
            raise TimeoutError(f"DbWriter for {self._path}: producers still blocked on the queue")
        try:
            self._closing = True
        finally:
            self._submit_lock.release()
        if self._thread is None:
            self._closed = True
            return
        self.flush(timeout)
        self._queue.put(_Stop(), timeout=timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"DbWriter for {self._path}: writer thread did not stop")
        self._closed = True
        logger.info("closed %s after writing %d rows", self._path, self.rows_written)

    def abort(self, timeout: float = 10.0) -> int:
        """Stop retrying, drop what is not committed yet, and stop the thread.

        For an owner that gave up on a failing database and said so: unlike
        :meth:`close` it does not wait for the queue to commit. Later submissions
        raise ``RuntimeError``; :meth:`close` then does nothing.

        Args:
            timeout: Seconds to wait for the thread.

        Returns:
            Submissions dropped (submitted, never committed).

        Raises:
            TimeoutError: The thread did not stop in time.
        """
        self._abort.set()
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # a full queue: the thread is taking items
                self._queue.put_nowait(_Stop())
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"DbWriter for {self._path}: writer thread did not stop")
        if not self._submit_lock.acquire(timeout=timeout):
            raise TimeoutError(f"DbWriter for {self._path}: producers still blocked on the queue")
        try:
            self._closing = self._closed = True
        finally:
            self._submit_lock.release()
        with self._state:
            dropped = self._submitted - self._committed
        logger.warning(
            "gave up on %s after writing %d rows: %d submissions not written",
            self._path,
            self.rows_written,
            dropped,
        )
        return dropped

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _enqueue(self, item: _Points | _Event) -> int:
        with self._submit_lock:
            if self._closing or self._thread is None:
                state = "closed" if self._closing else "not started"
                raise RuntimeError(f"DbWriter for {self._path} is {state}")
            while True:
                try:
                    self._queue.put(item, timeout=1.0)
                    break
                except queue.Full:
                    if not self._thread.is_alive():
                        raise RuntimeError(
                            f"DbWriter for {self._path}: writer thread is gone"
                        ) from None
            self._submitted += 1
            return self._submitted

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            stop = False
            while not stop and not self._abort.is_set():
                group = [self._queue.get()]
                while len(group) < self.MAX_BATCHES_PER_TRANSACTION:
                    try:
                        group.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                writes = [item for item in group if not isinstance(item, _Stop)]
                stop = len(writes) < len(group)
                if writes and not self._abort.is_set():
                    self._commit(conn, writes)
        finally:
            conn.close()
            self._conn = None

    def _commit(self, conn: sqlite3.Connection, items: list[_Points | _Event]) -> None:
        """Write ``items`` in one transaction, retrying with backoff until it commits."""
        points = [row for item in items if isinstance(item, _Points) for row in item.rows]
        events = [item.row for item in items if isinstance(item, _Event)]
        delay = self.RETRY_INITIAL_S
        attempt = 1
        while True:
            try:
                with transaction(conn):
                    if points:
                        conn.executemany(_INSERT_POINTS, points)
                    if events:
                        conn.executemany(_INSERT_EVENT, events)
                break
            except Exception as exc:
                with self._state:
                    self._last_error = exc
                    if self._failing_since is None:
                        self._failing_since = time.monotonic()
                logger.warning(
                    "writing %d track points and %d camera events to %s failed "
                    "(attempt %d), retrying in %.2fs: %s: %s",
                    len(points),
                    len(events),
                    self._path,
                    attempt,
                    delay,
                    type(exc).__name__,
                    exc,
                )
                if self._abort.wait(delay):
                    return
                delay = min(delay * 2, self.RETRY_MAX_S)
                attempt += 1
        if attempt > 1:
            logger.info("write to %s succeeded after %d attempts", self._path, attempt)
        with self._state:
            self._committed += len(items)
            self._rows_written += len(points) + len(events)
            self._failing_since = None
            self._state.notify_all()
