"""Building camera workers from the config (the one appliance module that uses vision)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.config import BoxConfig, CameraConfig
from local_db import DbWriter
from vision.assets import cache_dir
from vision.detectors import Detector, OnnxDetectorConfig, create_detector
from vision.ring_buffer import FrameRingBuffer
from vision.sources import SourceError, open_source
from vision.tracking import PersonTracker
from vision.worker import CameraWorker, FrameObserver, PointSink, StateSink, WorkerStats

logger = logging.getLogger(__name__)

ASSET_PREFIX = "asset:"
CALIBRATION_STRIDE = 10  # take every 10th frame for INT8 calibration


def resolve_source(spec: str) -> str:
    """Expand ``asset:NAME`` (the asset cache) and ``~`` in a camera source."""
    if spec.startswith(ASSET_PREFIX):
        return str(cache_dir() / "assets" / spec[len(ASSET_PREFIX) :])
    if "://" in spec or spec.startswith("usb:"):
        return spec
    return str(Path(spec).expanduser())


def _calibration_images(spec: str, fps: float, count: int) -> Iterator[npt.NDArray[np.uint8]]:
    """Every 10th frame of a source, ``count`` of them; opened only when iterated."""
    source = open_source(spec, fps, start_utc_ms=0)
    source.open()
    try:
        index = taken = 0
        while taken < count:
            frame = source.read()
            if frame is None:
                return
            if index % CALIBRATION_STRIDE == 0:
                taken += 1
                yield frame.image
            index += 1
    finally:
        source.close()


def build_detector(config: BoxConfig, video: str | None = None) -> Detector:
    """The box's detector; INT8 is calibrated on the first camera's own frames (RAM only).

    Args:
        config: the box config.
        video: a file to calibrate on instead of the first camera's source.

    When INT8 has no cached model yet and the calibration source cannot be read
    (camera down at first start), the box runs in fp32 rather than not at all.
    """
    det = config.detector
    if not (isinstance(det, OnnxDetectorConfig) and det.precision == "int8"):
        return create_detector(det)
    spec = video or resolve_source(config.cameras[0].source)
    try:
        return create_detector(
            det, _calibration_images(spec, config.cameras[0].fps, det.calibration_frames)
        )
    except SourceError as exc:
        logger.warning("INT8 calibration impossible (%s): running fp32 until it can be", exc)
        return create_detector(det.model_copy(update={"precision": "fp32"}))


def build_worker(
    config: BoxConfig,
    camera: CameraConfig,
    detector: Detector,
    on_points: PointSink,
    on_state: StateSink,
    *,
    video: str | None = None,
    start_utc_ms: int | None = None,
    on_frame: FrameObserver | None = None,
    retry_backoff: tuple[float, float] = (1.0, 30.0),
) -> CameraWorker:
    """One camera's worker, wired to the given sinks.

    Args:
        config: the box config.
        camera: which camera.
        detector: the shared detector.
        on_points: TrackPoint batch sink (the database writer).
        on_state: camera up/down sink.
        video: process this file instead of the camera's source (as fast as
            possible, every frame, video time from ``start_utc_ms``).
        start_utc_ms: UTC time of the file's first frame.
        on_frame: per-frame observer (benchmarks, evaluation).
        retry_backoff: first and maximum delay between reopen attempts of a dead source.
    """
    if video is not None:
        source = open_source(video, camera.fps, start_utc_ms=start_utc_ms or 0)
        ring = None
    else:
        source = open_source(resolve_source(camera.source), camera.fps, loop=camera.loop)
        ring = FrameRingBuffer(config.ring_buffer.seconds, config.ring_buffer.max_mb << 20)
    return CameraWorker(
        camera.id,
        source,
        detector,
        PersonTracker(camera.fps, config.tracker),
        camera.floor_mapping(),
        on_points,
        on_state,
        ring=ring,
        lossless=video is not None,
        on_frame=on_frame,
        retry_backoff=retry_backoff,
    )


def process_file(
    config: BoxConfig,
    camera: CameraConfig,
    detector: Detector,
    video: str,
    db: Path,
    start_utc_ms: int,
    *,
    on_frame: FrameObserver | None = None,
    stop: threading.Event | None = None,
) -> WorkerStats:
    """Run one camera's pipeline over a video file into a SQLite file, every frame.

    Args:
        config: the box config.
        camera: whose calibration maps the points.
        detector: the detector to use.
        video: the file.
        db: the SQLite file to write (created and migrated if new).
        start_utc_ms: UTC time of the first frame (video time after it).
        on_frame: per-frame observer.
        stop: set it to end early.

    Returns:
        The worker's counters, once every point is committed.
    """
    with DbWriter(db) as writer:
        worker = build_worker(
            config,
            camera,
            detector,
            writer.submit_points,
            writer.submit_camera_state,
            video=video,
            start_utc_ms=start_utc_ms,
            on_frame=on_frame,
        )
        return worker.run(stop or threading.Event())
