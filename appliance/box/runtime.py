"""``footfall run``: the box's camera workers and services, supervised until SIGTERM.

Start-up is a flat, readable sequence (like Frigate's ``FrigateApp.start``):
database writer, detector, one supervised thread per camera, one per service
(the scheduler, and whatever the caller adds: alert engine, web server, …),
then ``READY=1`` to systemd. The main thread then samples health every second
and pets the systemd watchdog while nothing is wedged. SIGTERM or SIGINT sets
one stop event: services return, every worker flushes its last batch, and the
writer commits before the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Literal, Protocol

from appliance.box.cameras import build_detector, build_worker
from appliance.box.health import FrameCounters, Health
from appliance.box.sdnotify import Notifier
from appliance.box.supervisor import Crash, RestartPolicy, Service, Supervisor
from appliance.config import BoxConfig, CameraConfig
from appliance.config.live import ConfigSource, LiveConfig, current
from local_db import DbWriter
from local_db.backup import remove_stale_temps
from vision.ring_buffer import FrameRingBuffer
from vision.snapshots import frame_provider
from vision.types import TrackPoint
from vision.worker import CameraWorker, PointSink, StateSink

logger = logging.getLogger(__name__)

TICK_S = 1.0
STOP_TIMEOUT_S = 30.0


class CameraRunnable(Protocol):
    """What the supervisor runs for a camera (``vision.worker.CameraWorker``)."""

    @property
    def stats(self) -> FrameCounters:
        """Live frame and drop counters."""

    def run(self, stop: threading.Event) -> object:
        """Process frames until ``stop`` is set or the source ends."""


#: Builds a camera's worker from its config and the sinks it must report to.
WorkerFactory = Callable[[CameraConfig, PointSink, StateSink], CameraRunnable]


def restart_policy(config: BoxConfig) -> RestartPolicy:
    """The restart budget of the config's ``runtime`` section."""
    rt = config.runtime
    return RestartPolicy(
        max_restarts=rt.max_restarts,
        window_s=rt.restart_window_s,
        backoff_max_s=rt.restart_backoff_max_s,
        down_retry_s=rt.down_retry_s,
    )


class Box:
    """The running box.

    Args:
        config: the validated store config, or the process's live one: a camera whose
            config changes is rebuilt (new cameras and a new detector wait for a restart).
        db_path: the SQLite file (default: ``storage.db_path``).
        services: long-running parts to supervise next to the cameras.
        worker_factory: builds camera workers (default: the real pipeline with
            the config's detector, built once at start).
        health: where state is reported (default: a new one).
        notifier: systemd notifications (default: from ``$NOTIFY_SOCKET``).
        policy: the restart budget (default: from ``config.runtime``).
    """

    def __init__(
        self,
        config: ConfigSource,
        db_path: Path | None = None,
        *,
        services: Sequence[Service] = (),
        worker_factory: WorkerFactory | None = None,
        health: Health | None = None,
        notifier: Notifier | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.source = config
        config = current(config)
        self.db_path = db_path or Path(config.storage.db_path).expanduser()
        self.stop_event = threading.Event()
        self.writer = DbWriter(self.db_path)
        self.health = health or Health(config, self.db_path)
        self.notifier = notifier or Notifier()
        self.supervisor = Supervisor(self.stop_event, policy or restart_policy(config))
        self._camera_ids = [c.id for c in config.cameras]  # the cameras this box runs
        self.services: list[Service] = list(services)
        self._worker_factory = worker_factory
        self._status = ""
        self._last_ping = 0.0
        self._withheld: list[str] = []
        self._rings: dict[str, FrameRingBuffer] = {}
        #: camera id → its newest RAM frame as JPEG, for the installer's calibration view
        self.frame_jpeg = frame_provider(self._rings)
        if isinstance(self.source, LiveConfig):
            self.source.subscribe(self._config_changed)
            self.source.report_to(self.health.config_state)

    @property
    def config(self) -> BoxConfig:
        """The config in use (the live config's newest good version)."""
        return current(self.source)

    def _config_changed(self, old: BoxConfig, new: BoxConfig) -> None:
        """Rebuild the workers of the cameras whose config changed."""
        before = {c.id: c for c in old.cameras}
        after = {c.id: c for c in new.cameras}
        every = old.tracker != new.tracker or old.ring_buffer != new.ring_buffer
        for cid in self._camera_ids:
            if cid in after and (every or before.get(cid) != after[cid]):
                self.supervisor.restart(f"camera {cid}")
        moved = sorted(set(before) ^ set(after))
        if moved:
            logger.warning("cameras added or removed (%s): the next start runs them", moved)
        if old.detector != new.detector:
            logger.warning("the detector's config changed: the next start uses it")

    def add_service(self, service: Service) -> None:
        """Supervise one more service (call before :meth:`start`)."""
        self.services.append(service)

    def start(self) -> None:
        """Open the database, start the camera workers and the services, tell systemd."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temps(self.db_path.parent):
            logger.info("removed %s, left by a killed backup or restore", stale.name)
        self.writer.start()
        self.health.watch_writer(self.writer)
        factory = self._worker_factory or self._real_workers()
        for camera in self.config.cameras:
            if camera.id in self._camera_ids:  # health knows these (a new one waits)
                self._supervise_camera(camera, factory)
        for service in self.services:
            self._supervise_service(service)
        logger.info(
            "box %s running %d camera(s), services: %s",
            self.config.store.id,
            len(self.config.cameras),
            ", ".join(s.name for s in self.services) or "none",
        )
        self.notifier.ready(f"{len(self.config.cameras)} camera(s) starting")

    def _real_workers(self) -> WorkerFactory:
        detector = build_detector(self.config)

        def make(camera: CameraConfig, on_points: PointSink, on_state: StateSink) -> CameraRunnable:
            return build_worker(self.config, camera, detector, on_points, on_state)

        return make

    def _store_state(
        self, camera_id: str, t_ms: int, state: Literal["up", "down"], detail: str
    ) -> None:
        """Record a camera state change (once per change, whoever reports it)."""
        if self.health.set_camera_state(camera_id, t_ms, state, detail):
            self.writer.submit_camera_state(camera_id, t_ms, state, detail)

    def _supervise_camera(self, camera: CameraConfig, factory: WorkerFactory) -> None:
        def on_points(rows: Sequence[TrackPoint]) -> None:
            self.writer.submit_points(rows)
            if rows:
                self.health.points_stored(camera.id, max(r.t_utc_ms for r in rows))

        def make() -> CameraRunnable:
            latest = {c.id: c for c in self.config.cameras}.get(camera.id, camera)
            worker = factory(latest, on_points, self._store_state)
            self.health.attach_counters(camera.id, worker.stats)
            if isinstance(worker, CameraWorker) and worker.ring is not None:
                self._rings[camera.id] = worker.ring
            return worker

        def crashed(crash: Crash) -> None:
            self.health.camera_crashed(camera.id, crash.exhausted)
            why = "restart budget spent" if crash.exhausted else "restarting"
            detail = f"worker crashed ({why}): {type(crash.error).__name__}: {crash.error}"
            self._store_state(camera.id, round(time.time() * 1000), "down", detail)

        self.supervisor.add(
            f"camera {camera.id}",
            make,
            thread_name=f"camera-{camera.id}",
            on_crash=crashed,
            on_end=lambda _name: self.health.camera_ended(camera.id),
        )

    def _supervise_service(self, service: Service) -> None:
        def make() -> Service:
            self.health.service_state(service.name, "running")
            return service

        def crashed(crash: Crash) -> None:
            state: Literal["down", "restarting"] = "down" if crash.exhausted else "restarting"
            detail = f"{type(crash.error).__name__}: {crash.error}"
            self.health.service_state(service.name, state, detail)

        self.supervisor.add(
            f"service {service.name}",
            make,
            thread_name=f"service-{service.name}",
            on_crash=crashed,
            on_end=lambda _name: self.health.service_state(service.name, "ended"),
        )

    def cameras_running(self) -> list[str]:
        """Ids of the cameras whose supervised thread still runs."""
        alive = set(self.supervisor.alive())
        return [cid for cid in self._camera_ids if f"camera {cid}" in alive]

    def tick(self) -> None:
        """Look at the config file, sample health, pet the watchdog, update the status."""
        if isinstance(self.source, LiveConfig):
            self.source.check()
        self.health.sample()
        problems = self.health.liveness_problems()
        interval = self.notifier.watchdog_interval_s
        now = time.monotonic()
        if problems != self._withheld:
            if problems:
                logger.error("withholding the watchdog (systemd will restart us): %s", problems)
            self._withheld = problems
        if interval is not None and not problems and now - self._last_ping >= interval:
            self.notifier.watchdog()
            self._last_ping = now
        report = self.health.health_report()
        up = sum(c["state"] == "up" for c in report["cameras"].values())
        status = f"{up}/{len(report['cameras'])} camera(s) up; {report['status']}"
        if report["reasons"]:
            status += f": {report['reasons'][0]}"
        if status != self._status:
            self.notifier.status(status)
            self._status = status

    def stop(self) -> None:
        """Stop services and workers, flush their points and close the database."""
        self.notifier.stopping()
        self.stop_event.set()
        stuck = self.supervisor.join(STOP_TIMEOUT_S)
        if stuck:
            logger.warning("still running after %.0f s: %s", STOP_TIMEOUT_S, stuck)
        # while the box is off its cameras see nothing: coverage must not count it as up
        stopped_ms = round(time.time() * 1000)
        for cid in self._camera_ids:
            self._store_state(cid, stopped_ms, "down", "box stopped")
        self.writer.close()
        logger.info("box stopped; %d rows written", self.writer.rows_written)

    def run_until_signal(self) -> None:
        """Start, tick until SIGTERM/SIGINT (or every camera source ended), stop gracefully."""

        def _handle(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _handle)
        signal.signal(signal.SIGINT, _handle)
        self.start()
        try:
            while not self.stop_event.wait(TICK_S):
                self.tick()
                if not self.cameras_running():
                    logger.info("all camera sources ended")
                    break
        finally:
            self.stop()
