"""``footfall bench vision``: our pipeline against ultralytics' stock tracking loop.

Same model weights, same input size, same video, one run. The peer is run the way
a user runs it — ``model.track(source, tracker="bytetrack.yaml", stream=True)`` —
first with ultralytics' own thread count, then with every core given to torch;
the ratio is taken against the faster of the two.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.box.cameras import build_detector, process_file
from appliance.config import BoxConfig
from lab import CHECKOUT
from vision.assets import resolve_model
from vision.detectors.ultralytics import import_ultralytics
from vision.sources import Frame
from vision.types import Tracks

logger = logging.getLogger(__name__)


HAND_COUNTS = CHECKOUT / "tests/fixtures/vtest_person_counts.json"


@dataclass(frozen=True, slots=True)
class RunResult:
    """One contender's numbers.

    Attributes:
        counts: persons reported in each frame (0-based frame index).
    """

    name: str
    frames: int
    seconds: float
    persons_per_frame: float
    unique_tracks: int
    counts: dict[int, int] = field(default_factory=dict, repr=False)

    def hand_count_mae(self) -> float | None:
        """Mean absolute error against the hand-counted frames of vtest.avi, if available."""
        if not HAND_COUNTS.is_file():
            return None
        truth = json.loads(HAND_COUNTS.read_text())["counts"]
        seen = [(int(f), n) for f, n in truth.items() if int(f) < self.frames]
        if not seen:
            return None
        return float(sum(abs(self.counts.get(f, 0) - int(n)) for f, n in seen) / len(seen))

    def summary(self) -> dict[str, object]:
        """JSON-ready numbers of this run."""
        mae = self.hand_count_mae()
        return {
            "name": self.name,
            "frames": self.frames,
            "seconds": round(self.seconds, 2),
            "fps": round(self.fps, 2),
            "persons_per_frame": round(self.persons_per_frame, 3),
            "unique_tracks": self.unique_tracks,
            "hand_count_mae": None if mae is None else round(mae, 3),
        }

    @property
    def fps(self) -> float:
        """Frames per second of wall time."""
        return self.frames / self.seconds if self.seconds else 0.0


def run_ours(config: BoxConfig, video: Path, max_frames: int | None = None) -> RunResult:
    """Our whole pipeline on a file: decode, detect, track, map, write SQLite rows."""
    detector = build_detector(config, str(video))  # prepared and cached before timing
    stop = threading.Event()

    counts: dict[int, int] = {}

    def limit(frame: Frame, tracks: Tracks) -> None:
        counts[frame.index] = len(tracks)
        if max_frames is not None and frame.index + 1 >= max_frames:
            stop.set()

    with tempfile.TemporaryDirectory() as tmp:
        stats = process_file(
            config,
            config.cameras[0],
            detector,
            str(video),
            Path(tmp) / "bench.db",
            0,
            on_frame=limit,
            stop=stop,
        )
    return RunResult(
        "footfall",
        stats.frames,
        stats.seconds,
        stats.persons_per_frame,
        len(stats.track_ids),
        counts,
    )


def _peer_frames(model_path: Path, video: Path, imgsz: int) -> Iterator[object]:
    ultralytics = import_ultralytics()
    model = ultralytics.YOLO(str(model_path), task="detect")
    yield from model.track(
        source=str(video), tracker="bytetrack.yaml", stream=True, imgsz=imgsz, verbose=False
    )


def run_peer(
    config: BoxConfig, video: Path, threads: int | None, max_frames: int | None = None
) -> RunResult:
    """Ultralytics' stock loop; ``threads`` None keeps ultralytics' own torch thread count."""
    import_ultralytics()
    import torch

    torch_utils: Any = importlib.import_module("ultralytics.utils.torch_utils")

    # ultralytics' select_device() resets torch to its NUM_THREADS (cores - 1) when the
    # predictor starts, so a plain torch.set_num_threads() beforehand is undone.
    default_threads, default_yolo = torch.get_num_threads(), torch_utils.NUM_THREADS
    if threads is not None:
        torch.set_num_threads(threads)
        torch_utils.NUM_THREADS = threads
    frames = persons = 0
    ids: set[int] = set()
    counts: dict[int, int] = {}
    model = resolve_model(config.detector.model, ".pt")
    imgsz = max(config.detector.input_size)
    try:
        started = time.perf_counter()
        for result in _peer_frames(model, video, imgsz):
            boxes = result.boxes  # type: ignore[attr-defined]
            tracked = 0 if boxes is None or boxes.id is None else len(boxes.id)
            if tracked:
                ids.update(int(i) for i in boxes.id.tolist())
            counts[frames] = tracked
            persons += tracked
            frames += 1
            if max_frames is not None and frames >= max_frames:
                break
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(default_threads)
        torch_utils.NUM_THREADS = default_yolo
    name = "ultralytics (stock threads)" if threads is None else f"ultralytics ({threads} threads)"
    return RunResult(name, frames, seconds, persons / max(frames, 1), len(ids), counts)


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
        "ours_hand_count_mae": ours.summary()["hand_count_mae"],
        "peer_hand_count_mae": peer.summary()["hand_count_mae"],
        "runs": [r.summary() for r in (ours, stock, tuned)],
        "machine": machine(),
        "video": str(video),
        "input_size": list(config.detector.input_size),
    }
