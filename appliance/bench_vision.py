"""``footfall bench vision``: our pipeline against ultralytics' stock tracking loop.

Same model weights, same input size, same video, one run. The peer is run the way
a user runs it — ``model.track(source, tracker="bytetrack.yaml", stream=True)`` —
first with ultralytics' own thread count, then with every core given to torch;
the ratio is taken against the faster of the two.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.cameras import build_detector, build_worker
from appliance.config import BoxConfig
from local_db import DbWriter
from vision.assets import resolve_model
from vision.detectors.ultralytics import import_ultralytics
from vision.sources import Frame
from vision.types import Tracks

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunResult:
    """One contender's numbers."""

    name: str
    frames: int
    seconds: float
    persons_per_frame: float
    unique_tracks: int

    @property
    def fps(self) -> float:
        """Frames per second of wall time."""
        return self.frames / self.seconds if self.seconds else 0.0


def run_ours(config: BoxConfig, video: Path, max_frames: int | None = None) -> RunResult:
    """Our whole pipeline on a file: decode, detect, track, map, write SQLite rows."""
    detector = build_detector(config, str(video))  # prepared and cached before timing
    stop = threading.Event()

    def limit(frame: Frame, _tracks: Tracks) -> None:
        if max_frames is not None and frame.index + 1 >= max_frames:
            stop.set()

    with tempfile.TemporaryDirectory() as tmp, DbWriter(Path(tmp) / "bench.db") as writer:
        worker = build_worker(
            config,
            config.cameras[0],
            detector,
            writer.submit_points,
            writer.submit_camera_state,
            video=str(video),
            start_utc_ms=0,
            on_frame=limit,
        )
        stats = worker.run(stop)
        writer.flush()
    return RunResult(
        "footfall", stats.frames, stats.seconds, stats.persons_per_frame, len(stats.track_ids)
    )


def _peer_frames(model_path: Path, video: Path, imgsz: int, conf: float | None) -> Iterator[object]:
    ultralytics = import_ultralytics()
    model = ultralytics.YOLO(str(model_path), task="detect")
    kwargs = {"conf": conf} if conf is not None else {}
    yield from model.track(
        source=str(video),
        tracker="bytetrack.yaml",
        stream=True,
        imgsz=imgsz,
        verbose=False,
        **kwargs,
    )


def run_peer(
    config: BoxConfig, video: Path, threads: int | None, max_frames: int | None = None
) -> RunResult:
    """Ultralytics' stock loop; ``threads`` None keeps ultralytics' own torch thread count."""
    import_ultralytics()
    import torch

    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    frames = persons = 0
    ids: set[int] = set()
    model = resolve_model(config.detector.model, ".pt")
    imgsz = max(config.detector.input_size)
    try:
        started = time.perf_counter()
        for result in _peer_frames(model, video, imgsz, None):
            boxes = result.boxes  # type: ignore[attr-defined]
            if boxes is not None and boxes.id is not None:
                persons += len(boxes.id)
                ids.update(int(i) for i in boxes.id.tolist())
            frames += 1
            if max_frames is not None and frames >= max_frames:
                break
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(default_threads)
    name = "ultralytics (stock threads)" if threads is None else f"ultralytics ({threads} threads)"
    return RunResult(name, frames, seconds, persons / max(frames, 1), len(ids))


def machine() -> str:
    """One line about this machine."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


def bench_vision(
    config: BoxConfig, video: Path, max_frames: int | None = None
) -> dict[str, object]:
    """Run both contenders and return the JSON-ready summary."""
    ours = run_ours(config, video, max_frames)
    stock = run_peer(config, video, None, max_frames)
    tuned = run_peer(config, video, os.cpu_count() or 1, max_frames)
    peer = max(stock, tuned, key=lambda r: r.fps)
    return {
        "ours_fps": round(ours.fps, 2),
        "peer_fps": round(peer.fps, 2),
        "ratio": round(ours.fps / peer.fps, 2) if peer.fps else None,
        "ours_persons_per_frame": round(ours.persons_per_frame, 3),
        "peer_persons_per_frame": round(peer.persons_per_frame, 3),
        "ours_tracks": ours.unique_tracks,
        "peer_tracks": peer.unique_tracks,
        "runs": [asdict(r) | {"fps": round(r.fps, 2)} for r in (ours, stock, tuned)],
        "machine": machine(),
        "video": str(video),
        "input_size": list(config.detector.input_size),
    }
