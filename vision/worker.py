"""One camera's loop: frames → detections → ByteTrack → foot points → floor metres.

The worker hands out only :class:`vision.types.TrackPoint` batches (to a sink the
appliance wires to the database writer) and camera up/down states. Frames stay in
this module and, optionally, in the RAM ring buffer for the installer's view.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from vision.detectors.base import Detector
from vision.homography import FloorMapping
from vision.ring_buffer import FrameRingBuffer
from vision.sources import Frame, FrameReader, FrameSource
from vision.tracking import PersonTracker
from vision.types import TrackPoint, Tracks

logger = logging.getLogger(__name__)

PointSink = Callable[[Sequence[TrackPoint]], object]  # what a sink returns is ignored
StateSink = Callable[[str, int, Literal["up", "down"], str], object]
FrameObserver = Callable[[Frame, Tracks], None]


@dataclass(slots=True)
class WorkerStats:
    """Counters of one worker run; ``frames``, ``points``, ``persons`` and ``dropped`` are live."""

    frames: int = 0
    points: int = 0
    persons: int = 0
    track_ids: set[int] = field(default_factory=set)
    seconds: float = 0.0
    dropped: int = 0

    @property
    def fps(self) -> float:
        """Frames processed per wall-clock second."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def persons_per_frame(self) -> float:
        """Mean confirmed tracks per frame."""
        return self.persons / self.frames if self.frames else 0.0


class CameraWorker:
    """Runs one camera until stopped (or until a file ends).

    Args:
        camera_id: the config's camera id.
        source: where frames come from.
        detector: the person detector.
        tracker: this camera's own ByteTrack.
        mapping: image → floor homography.
        on_points: receives TrackPoint batches (at least once a second).
        on_state: receives ``(camera_id, t_utc_ms, state, detail)``.
        ring: RAM ring buffer for the live calibration view, if any.
        lossless: process every frame (files) rather than the newest (live).
        on_frame: optional observer of each frame's tracks (benchmarks, evaluation).
        batch_seconds: how often points are handed to ``on_points``.
        retry_backoff: first and maximum delay between attempts to reopen a dead source.
    """

    def __init__(
        self,
        camera_id: str,
        source: FrameSource,
        detector: Detector,
        tracker: PersonTracker,
        mapping: FloorMapping,
        on_points: PointSink,
        on_state: StateSink,
        *,
        ring: FrameRingBuffer | None = None,
        lossless: bool = False,
        on_frame: FrameObserver | None = None,
        batch_seconds: float = 1.0,
        retry_backoff: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.camera_id = camera_id
        self.detector = detector
        self.tracker = tracker
        self.mapping = mapping
        self.ring = ring
        self.stats = WorkerStats()
        self._on_points = on_points
        self._on_state = on_state
        self._on_frame = on_frame
        self._batch_seconds = batch_seconds
        self._reader = FrameReader(
            source,
            detector.prepare,
            self._state_changed,
            lossless=lossless,
            backoff=retry_backoff,
        )

    def _state_changed(self, state: Literal["up", "down"], detail: str, t_utc_ms: int) -> None:
        self._on_state(self.camera_id, t_utc_ms, state, detail)

    def run(self, stop: threading.Event) -> WorkerStats:
        """Process frames until ``stop`` is set or the file ends; flush before returning."""
        batch: list[TrackPoint] = []
        last_flush = time.monotonic()
        started = time.perf_counter()
        self._reader.start()
        try:
            while not stop.is_set():
                try:
                    item = self._reader.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    break
                frame, prepared = item
                batch.extend(self._process(frame, prepared))
                self.stats.dropped = self._reader.dropped
                if time.monotonic() - last_flush >= self._batch_seconds:
                    self._flush(batch)
                    last_flush = time.monotonic()
        finally:
            self._reader.stop()
            self._flush(batch)
            self.stats.seconds = time.perf_counter() - started
            self.stats.dropped = self._reader.dropped
        logger.info(
            "camera %s: %d frames at %.1f fps, %d points",
            self.camera_id,
            self.stats.frames,
            self.stats.fps,
            self.stats.points,
        )
        return self.stats

    def _process(self, frame: Frame, prepared: object) -> list[TrackPoint]:
        detections = self.detector.detect(prepared)
        tracks = self.tracker.update(detections, frame.t_s)
        if self.ring is not None:
            self.ring.push(frame.t_s, frame.image)
        if self._on_frame is not None:
            self._on_frame(frame, tracks)
        floor = self.mapping.to_floor(tracks.foot_points())
        self.stats.frames += 1
        self.stats.persons += len(tracks)
        self.stats.track_ids.update(tracks.track_ids.tolist())
        return [
            TrackPoint(self.camera_id, int(tid), frame.t_utc_ms, float(x), float(y), float(c))
            for tid, (x, y), c in zip(tracks.track_ids, floor, tracks.conf, strict=True)
        ]

    def _flush(self, batch: list[TrackPoint]) -> None:
        if batch:
            self._on_points(list(batch))
            self.stats.points += len(batch)
            batch.clear()
