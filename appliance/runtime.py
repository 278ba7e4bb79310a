"""``footfall run``: the box's camera workers, supervised until SIGTERM.

Start-up is a flat, readable sequence (like Frigate's ``FrigateApp.start``):
database writer, detector, one worker thread per camera. SIGTERM or SIGINT sets
one stop event; every worker flushes its last batch and the writer commits
before the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from appliance.cameras import build_detector, build_worker
from appliance.config import BoxConfig, CameraConfig
from local_db import DbWriter
from vision.worker import CameraWorker

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 5.0


class Box:
    """The running box.

    Args:
        config: the validated store config.
        db_path: the SQLite file (default: ``storage.db_path``).
    """

    def __init__(self, config: BoxConfig, db_path: Path | None = None) -> None:
        self.config = config
        self.db_path = db_path or Path(config.storage.db_path).expanduser()
        self.stop_event = threading.Event()
        self.writer = DbWriter(self.db_path)
        self.workers: list[CameraWorker] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Open the database, build the detector and start one thread per camera."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.writer.start()
        detector = build_detector(self.config)
        for camera in self.config.cameras:

            def make(camera: CameraConfig = camera) -> CameraWorker:
                return build_worker(
                    self.config,
                    camera,
                    detector,
                    self.writer.submit_points,
                    self.writer.submit_camera_state,
                )

            thread = threading.Thread(
                target=self._supervise, args=(make,), name=f"camera-{camera.id}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        logger.info("box %s running %d camera(s)", self.config.store.id, len(self._threads))

    def _supervise(self, make: Callable[[], CameraWorker]) -> None:
        """Run a camera's worker; a crashed worker is rebuilt after a pause."""
        while not self.stop_event.is_set():
            worker = make()
            self.workers.append(worker)
            try:
                worker.run(self.stop_event)
            except Exception:
                logger.exception("camera %s worker crashed; restarting", worker.camera_id)
                self.stop_event.wait(RESTART_DELAY_S)
                continue
            if not self.stop_event.is_set():
                logger.info("camera %s source ended", worker.camera_id)
            return

    def stop(self) -> None:
        """Stop every worker, flush their points and close the database."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.writer.close()
        logger.info("box stopped; %d rows written", self.writer.rows_written)

    def run_until_signal(self) -> None:
        """Start, wait for SIGTERM/SIGINT, stop gracefully."""

        def _handle(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _handle)
        signal.signal(signal.SIGINT, _handle)
        self.start()
        try:
            while not self.stop_event.wait(1.0):
                if not any(t.is_alive() for t in self._threads):
                    logger.info("all camera sources ended")
                    break
        finally:
            self.stop()
