"""The box's health: per-camera and per-service state, counters, and what is wrong.

One :class:`Health` object is fed by the runtime (camera states and points from
the database sinks, crashes from the supervisor, job outcomes from the
scheduler) and by hooks the other parts call (alerts raised, queue lengths,
sync lag). It answers three readers from the same state:

* :meth:`Health.health_report` for the staff's Health page (``ok`` or ``degraded``
  with reasons), and :meth:`Health.public_report` for the unauthenticated ``/healthz``
  (the same without any path or URL),
* :attr:`Health.registry`, a Prometheus registry for ``/metrics``,
* :meth:`Health.liveness_problems` for the systemd watchdog (only what a
  process restart cures: a wedged camera thread).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from appliance.analytics.engine import BUCKET_MS
from appliance.config import BoxConfig
from vision.redaction import redact

logger = logging.getLogger(__name__)

CameraState = Literal["starting", "up", "down", "ended"]
ServiceState = Literal["running", "restarting", "down", "ended"]
FPS_SAMPLES = 11  # fps over the last ~10 samples (one a second)
WRITE_ERROR_HOLD_S = 60.0  # a database write error keeps the box degraded this long
ANALYTICS_SLACK_MS = 3 * BUCKET_MS  # closed buckets not analysed yet before it counts as behind


class FrameCounters(Protocol):
    """A camera worker's live counters (``vision.worker.WorkerStats`` has them)."""

    frames: int
    dropped: int


class WriterStatus(Protocol):
    """What health reads from the database writer (``local_db.DbWriter``)."""

    @property
    def last_error(self) -> BaseException | None:
        """The most recent write error."""

    @property
    def rows_written(self) -> int:
        """Rows committed so far."""


@dataclass
class _Camera:
    state: CameraState = "starting"
    detail: str = ""
    since_ms: int = 0
    frames: int = 0
    dropped: int = 0
    restarts: int = 0
    exhausted: bool = False
    last_point_ms: int | None = None
    counters: FrameCounters | None = None
    seen: tuple[int, int] = (0, 0)
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=FPS_SAMPLES))
    last_frame_mono: float = 0.0

    def fps(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, f0), (t1, f1) = self.samples[0], self.samples[-1]
        return (f1 - f0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass
class _Service:
    state: ServiceState = "running"
    restarts: int = 0
    detail: str = ""


@dataclass
class _Job:
    runs: int = 0
    failures: int = 0
    last_ok: bool = True
    last_run_ms: int = 0
    last_success_ms: int | None = None
    last_error: str = ""


class Health:
    """The box's state as the runtime, the scheduler and the hooks report it.

    Every method may be called from any thread.

    Args:
        config: the store config (cameras, thresholds).
        db_path: the SQLite file (its size and its disk's free space are reported).
        clock: UTC seconds (a test passes its own).
        monotonic: monotonic seconds, for rates and stalls.
    """

    def __init__(
        self,
        config: BoxConfig,
        db_path: Path,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.db_path = db_path
        self._clock = clock
        self._mono = monotonic
        self._lock = threading.Lock()
        now_ms = self._now_ms()
        started = monotonic()
        self._cameras = {
            c.id: _Camera(since_ms=now_ms, last_frame_mono=started) for c in config.cameras
        }
        self._services: dict[str, _Service] = {}
        self._jobs: dict[str, _Job] = {}
        self._alerts: dict[str, int] = {}
        self._queues: dict[str, Callable[[], int]] = {}
        self._customer_queues: dict[str, int] = {}
        self._sync_lag: Callable[[], float | None] | None = None
        self._writer: WriterStatus | None = None
        self._write_error: tuple[BaseException, float] | None = None
        self._analysed_until_ms: int | None = None
        self._config_error: str | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_HealthCollector(self))

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    # --- fed by the runtime -------------------------------------------------------------

    def set_camera_state(
        self, camera_id: str, t_ms: int, state: Literal["up", "down"], detail: str
    ) -> bool:
        """Record a camera going up or down.

        Returns:
            True when this changed the camera's state (so it should be stored).
        """
        detail = redact(detail)
        with self._lock:
            cam = self._cameras[camera_id]
            if cam.state == state:
                return False
            cam.state, cam.detail, cam.since_ms = state, detail, t_ms
            if state == "up":
                cam.exhausted = False
                cam.last_frame_mono = self._mono()
            return True

    def points_stored(self, camera_id: str, last_t_ms: int) -> None:
        """Record the newest point time of a batch handed to the database."""
        with self._lock:
            cam = self._cameras[camera_id]
            if cam.last_point_ms is None or last_t_ms > cam.last_point_ms:
                cam.last_point_ms = last_t_ms

    def attach_counters(self, camera_id: str, counters: FrameCounters) -> None:
        """Follow a (new) worker's live counters; totals carry on across restarts."""
        with self._lock:
            cam = self._cameras[camera_id]
            self._fold(cam, self._mono())  # what the previous worker did since the last sample
            cam.counters, cam.seen = counters, (0, 0)

    def camera_crashed(self, camera_id: str, exhausted: bool) -> None:
        """Count a worker restart; ``exhausted``: its restart budget is spent."""
        with self._lock:
            cam = self._cameras[camera_id]
            cam.restarts += 1
            cam.exhausted = exhausted

    def camera_ended(self, camera_id: str) -> None:
        """The camera's source ended (a file without ``loop``)."""
        with self._lock:
            cam = self._cameras[camera_id]
            cam.state, cam.detail, cam.since_ms = "ended", "source ended", self._now_ms()

    def service_state(self, name: str, state: ServiceState, detail: str = "") -> None:
        """Record a service starting (``running``), crashing, going down or ending."""
        with self._lock:
            svc = self._services.setdefault(name, _Service())
            if state in ("restarting", "down"):
                svc.restarts += 1
            svc.state, svc.detail = state, redact(detail)  # running: the last crash is over

    def config_state(self, error: str | None) -> None:
        """Why the config file's newest version is not in use (None: it is)."""
        with self._lock:
            self._config_error = None if error is None else redact(error)

    def job_finished(self, job_id: str, ok: bool, error: str = "") -> None:
        """Record one run of a scheduled job."""
        with self._lock:
            job = self._jobs.setdefault(job_id, _Job())
            job.runs += 1
            job.last_run_ms = self._now_ms()
            job.last_ok = ok
            if ok:
                job.last_success_ms = job.last_run_ms
            else:
                job.failures += 1
                job.last_error = redact(error)

    def analysed_until(self, end_ms: int) -> None:
        """The analytics job has written every bucket ending at or before ``end_ms``."""
        with self._lock:
            self._analysed_until_ms = end_ms

    def watch_writer(self, writer: WriterStatus) -> None:
        """Report the database writer's errors and rows."""
        with self._lock:
            self._writer = writer

    def sample(self) -> None:
        """Read the workers' counters and the writer's error (the runtime calls it every second)."""
        now = self._mono()
        with self._lock:
            for cam in self._cameras.values():
                self._fold(cam, now)
                cam.samples.append((now, cam.frames))
            error = self._writer.last_error if self._writer is not None else None
            if error is not None and (
                self._write_error is None or self._write_error[0] is not error
            ):
                self._write_error = (error, now)

    @staticmethod
    def _fold(cam: _Camera, now: float) -> None:
        """Add a worker's counters since they were last read to the camera's totals."""
        if cam.counters is None:
            return
        frames, dropped = cam.counters.frames, cam.counters.dropped
        seen_frames, seen_dropped = cam.seen
        cam.frames += max(0, frames - seen_frames)
        cam.dropped += max(0, dropped - seen_dropped)
        if frames > seen_frames:
            cam.last_frame_mono = now
        cam.seen = (frames, dropped)

    # --- hooks for the other parts ------------------------------------------------------

    def alert_raised(self, rule_id: str) -> None:
        """Count an alert raised by the alert engine."""
        with self._lock:
            self._alerts[rule_id] = self._alerts.get(rule_id, 0) + 1

    def customers_queued(self, lengths: Mapping[str, int]) -> None:
        """The people in each queue zone now (from the alert engine's live state)."""
        with self._lock:
            self._customer_queues = dict(lengths)

    def register_queue(self, name: str, length: Callable[[], int]) -> None:
        """Report a queue's length (read at every ``/healthz`` and scrape)."""
        with self._lock:
            self._queues[name] = length

    def register_sync_lag(self, lag_s: Callable[[], float | None]) -> None:
        """Report the sync's lag in seconds (None: nothing synced yet)."""
        with self._lock:
            self._sync_lag = lag_s

    # --- readers ------------------------------------------------------------------------

    def liveness_problems(self) -> list[str]:
        """What only a process restart cures: a camera up but without frames for too long."""
        stall_s = self.config.runtime.stall_s
        now = self._mono()
        with self._lock:
            return [
                f"camera {cid}: up but no frame for {now - cam.last_frame_mono:.0f} s"
                for cid, cam in self._cameras.items()
                if cam.state == "up" and now - cam.last_frame_mono > stall_s
            ]

    def health_report(self) -> dict[str, Any]:
        """Everything ``/healthz`` shows: ``status`` is ``ok`` or ``degraded`` with ``reasons``."""
        now_ms = self._now_ms()
        now = self._mono()
        db_bytes = self._db_bytes()
        free = self._disk_free()
        sync_lag = self._sync_lag() if self._sync_lag is not None else None
        queues = {name: int(fn()) for name, fn in self._queue_fns().items()}
        reasons = self.liveness_problems()
        with self._lock:
            customer_queues = dict(self._customer_queues)
            cameras = {
                cid: {
                    "state": cam.state,
                    "detail": cam.detail,
                    "since_ms": cam.since_ms,
                    "fps": round(cam.fps(), 2),
                    "frames": cam.frames,
                    "dropped_frames": cam.dropped,
                    "restarts": cam.restarts,
                    "restart_budget_spent": cam.exhausted,
                    "last_point_ms": cam.last_point_ms,
                }
                for cid, cam in self._cameras.items()
            }
            for cid, cam in self._cameras.items():
                if cam.exhausted:
                    reasons.append(f"camera {cid}: restart budget spent, retrying slowly")
                elif cam.state != "up":
                    reasons.append(f"camera {cid}: {cam.state} ({cam.detail or 'no frames yet'})")
            services = {
                n: {"state": s.state, "restarts": s.restarts, "detail": s.detail}
                for n, s in self._services.items()
            }
            # a running service with a detail works on, but not as configured (e.g. the
            # alert engine kept its last good rules because the new file is invalid)
            reasons += [
                f"service {n}: {s.state} ({s.detail})"
                for n, s in self._services.items()
                if s.state in ("restarting", "down") or (s.state == "running" and s.detail)
            ]
            jobs = {
                j: {
                    "runs": job.runs,
                    "failures": job.failures,
                    "last_ok": job.last_ok,
                    "last_run_ms": job.last_run_ms,
                    "last_success_ms": job.last_success_ms,
                }
                for j, job in self._jobs.items()
            }
            reasons += [
                f"job {j}: last run failed: {job.last_error}"
                for j, job in self._jobs.items()
                if not job.last_ok
            ]
            if self._write_error is not None and now - self._write_error[1] < WRITE_ERROR_HOLD_S:
                error = self._write_error[0]
                reasons.append(redact(f"database write failed: {type(error).__name__}: {error}"))
            if self._config_error is not None:
                reasons.append(f"config: {self._config_error} (running on the last good version)")
            config_error = self._config_error
            analysed = self._analysed_until_ms
            alerts = sum(self._alerts.values())
            rows = self._writer.rows_written if self._writer is not None else None
        behind_ms = self._analytics_behind_ms(analysed, now_ms)
        if behind_ms is not None:
            reasons.append(f"analytics: {behind_ms // 60_000} min of closed buckets not analysed")
        min_free = self.config.runtime.disk_free_min_mb << 20
        if free is not None and free < min_free:
            reasons.append(f"disk: {free >> 20} MiB free, below {min_free >> 20} MiB")
        return {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "store_id": self.config.store.id,
            "time_ms": now_ms,
            "cameras": cameras,
            "services": services,
            "jobs": jobs,
            "analytics": {"analysed_until_ms": analysed},
            "config": {"error": config_error},
            "db": {"path": str(self.db_path), "bytes": db_bytes, "rows_written": rows},
            "disk_free_bytes": free,
            "sync_lag_s": sync_lag,
            "alerts_raised": alerts,
            "queues": queues,
            "customer_queues": customer_queues,
        }

    def public_report(self) -> dict[str, Any]:
        """What the unauthenticated ``/healthz`` shows: :meth:`health_report` without locations.

        The database path is left out, and every text (reasons, camera and service
        details) has its URLs replaced by ``<url>`` and its paths by ``<path>``.
        """
        report = self.health_report()
        report["db"] = {k: v for k, v in report["db"].items() if k != "path"}
        scrubbed: dict[str, Any] = _without_locations(report)
        return scrubbed

    def _analytics_behind_ms(self, analysed: int | None, now_ms: int) -> int | None:
        """How far analysis lags behind the last closed bucket, if beyond the slack."""
        if analysed is None:
            return None
        closable = now_ms - self.config.runtime.late_grace_s * 1000
        behind = closable - closable % BUCKET_MS - analysed
        return behind if behind > ANALYTICS_SLACK_MS else None

    def _queue_fns(self) -> dict[str, Callable[[], int]]:
        with self._lock:
            return dict(self._queues)

    def _db_bytes(self) -> int | None:
        total, found = 0, False
        for suffix in ("", "-wal"):
            path = self.db_path.with_name(self.db_path.name + suffix)
            try:
                total += path.stat().st_size
                found = True
            except FileNotFoundError:
                continue
        return total if found else None

    def _disk_free(self) -> int | None:
        try:
            return shutil.disk_usage(self.db_path.parent).free
        except FileNotFoundError:
            return None

    def snapshot_counters(self) -> dict[str, Any]:
        """Counters for the Prometheus collector, read under one lock."""
        with self._lock:
            return {
                "cameras": {
                    cid: (
                        cam.state,
                        cam.fps(),
                        cam.frames,
                        cam.dropped,
                        cam.restarts,
                        cam.last_point_ms,
                    )
                    for cid, cam in self._cameras.items()
                },
                "services": {n: (s.state, s.restarts) for n, s in self._services.items()},
                "jobs": {
                    j: (job.runs, job.failures, job.last_success_ms)
                    for j, job in self._jobs.items()
                },
                "alerts": dict(self._alerts),
                "analysed_until_ms": self._analysed_until_ms,
            }


def _without_locations(value: Any) -> Any:
    """``value`` (JSON-like) with every string's URLs and paths replaced."""
    if isinstance(value, str):
        return redact(value, locations=True)
    if isinstance(value, dict):
        return {k: _without_locations(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_locations(v) for v in value]
    return value


class _HealthCollector(Collector):
    """Renders a :class:`Health` as Prometheus metrics at scrape time."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        report = self.health.health_report()
        snap = self.health.snapshot_counters()
        cams = snap["cameras"]
        up = GaugeMetricFamily("footfall_camera_up", "1 if the camera streams", labels=["camera"])
        fps = GaugeMetricFamily("footfall_camera_fps", "frames processed per s", labels=["camera"])
        frames = CounterMetricFamily(
            "footfall_camera_frames", "frames processed", labels=["camera"]
        )
        dropped = CounterMetricFamily(
            "footfall_camera_dropped_frames", "frames dropped (consumer behind)", labels=["camera"]
        )
        restarts = CounterMetricFamily(
            "footfall_camera_restarts", "camera worker restarts", labels=["camera"]
        )
        last_point = GaugeMetricFamily(
            "footfall_camera_last_point_timestamp_seconds",
            "UTC time of the newest stored point",
            labels=["camera"],
        )
        for cid, (state, f, n, d, r, last_ms) in cams.items():
            up.add_metric([cid], 1.0 if state == "up" else 0.0)
            fps.add_metric([cid], f)
            frames.add_metric([cid], n)
            dropped.add_metric([cid], d)
            restarts.add_metric([cid], r)
            if last_ms is not None:
                last_point.add_metric([cid], last_ms / 1000)
        yield from (up, fps, frames, dropped, restarts, last_point)

        svc_up = GaugeMetricFamily(
            "footfall_service_up", "1 if the service runs", labels=["service"]
        )
        svc_restarts = CounterMetricFamily(
            "footfall_service_restarts", "service restarts", labels=["service"]
        )
        for name, (state, r) in snap["services"].items():
            svc_up.add_metric([name], 1.0 if state == "running" else 0.0)
            svc_restarts.add_metric([name], r)
        yield from (svc_up, svc_restarts)

        runs = CounterMetricFamily("footfall_job_runs", "scheduled job runs", labels=["job"])
        fails = CounterMetricFamily("footfall_job_failures", "failed job runs", labels=["job"])
        last_ok = GaugeMetricFamily(
            "footfall_job_last_success_timestamp_seconds", "last successful run", labels=["job"]
        )
        for job, (n, failed, ok_ms) in snap["jobs"].items():
            runs.add_metric([job], n)
            fails.add_metric([job], failed)
            if ok_ms is not None:
                last_ok.add_metric([job], ok_ms / 1000)
        yield from (runs, fails, last_ok)

        alerts = CounterMetricFamily("footfall_alerts_raised", "alerts raised", labels=["rule"])
        for rule, n in snap["alerts"].items():
            alerts.add_metric([rule], n)
        yield alerts

        queues = GaugeMetricFamily("footfall_queue_length", "items queued", labels=["queue"])
        for name, n in report["queues"].items():
            queues.add_metric([name], n)
        yield queues
        people = GaugeMetricFamily(
            "footfall_customer_queue_length", "people in a queue zone now", labels=["zone"]
        )
        for zone, n in report["customer_queues"].items():
            people.add_metric([zone], n)
        yield people

        yield GaugeMetricFamily(
            "footfall_healthy", "1 if /healthz says ok", value=float(report["status"] == "ok")
        )
        for name, doc, value in (
            ("footfall_db_size_bytes", "database file and WAL", report["db"]["bytes"]),
            ("footfall_disk_free_bytes", "free space on the database's disk",
             report["disk_free_bytes"]),
            ("footfall_sync_lag_seconds", "age of the oldest unsynced aggregate",
             report["sync_lag_s"]),
            ("footfall_analysed_until_timestamp_seconds", "end of the last analysed bucket",
             None if snap["analysed_until_ms"] is None else snap["analysed_until_ms"] / 1000),
        ):  # fmt: skip
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=float(value))
        if report["db"]["rows_written"] is not None:
            yield CounterMetricFamily(
                "footfall_db_rows_written", "rows committed", value=report["db"]["rows_written"]
            )
