"""The real model on the real video: accuracy against hand counts, the peer, privacy."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from appliance.box.cameras import build_detector, process_file
from appliance.config import BoxConfig
from local_db import camera_events, connect, read_track_points
from vision.detectors import OnnxDetectorConfig, UltralyticsDetectorConfig, create_detector
from vision.sources import Frame
from vision.types import Tracks

FIXTURE = Path(__file__).parent / "fixtures" / "vtest_person_counts.json"
START_UTC_MS = 1_764_064_800_000  # 2025-11-25T10:00:00Z


def iou_matrix(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter), np.float64)


def read_frames(video: Path, indices: list[int]) -> dict[int, npt.NDArray[np.uint8]]:
    wanted = set(indices)
    out: dict[int, npt.NDArray[np.uint8]] = {}
    cap = cv2.VideoCapture(str(video))
    i = 0
    while len(out) < len(wanted):
        ok, image = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = np.asarray(image, np.uint8)
        i += 1
    cap.release()
    return out


@dataclass
class FullRun:
    db: Path
    per_frame: dict[int, Tracks] = field(default_factory=dict)
    frames: int = 0


@pytest.fixture(scope="module")
def full_run(
    vtest: Path, example_config: BoxConfig, tmp_path_factory: pytest.TempPathFactory
) -> FullRun:
    """The whole video through the shipped config, exactly as `footfall vision` runs it."""
    run = FullRun(tmp_path_factory.mktemp("full") / "footfall.db")

    def on_frame(frame: Frame, tracks: Tracks) -> None:
        run.per_frame[frame.index] = tracks

    detector = build_detector(example_config, str(vtest))
    camera = example_config.cameras[0]
    stats = process_file(
        example_config, camera, detector, str(vtest), run.db, START_UTC_MS, on_frame=on_frame
    )
    run.frames = stats.frames
    return run


def test_every_frame_processed_and_stored(full_run: FullRun) -> None:
    assert full_run.frames == 795
    conn = connect(full_run.db, readonly=True)
    rows = read_track_points(conn)
    assert len(rows) == sum(len(t) for t in full_run.per_frame.values()) > 3000
    assert {r[0] for r in rows} == {"courtyard"}
    # video time: frame i at START + i * 100 ms
    assert min(r[2] for r in rows) >= START_UTC_MS
    assert max(r[2] for r in rows) <= START_UTC_MS + 794 * 100
    # everybody stands on the demo floor plan (26 m x 25 m)
    xs, ys = np.array([r[3] for r in rows]), np.array([r[4] for r in rows])
    assert xs.min() > 0 and xs.max() < 26 and ys.min() > 0 and ys.max() < 25
    # on the video's clock: up at the first frame, down ("end of file") after the last
    assert [(e[1], e[2], e[3]) for e in camera_events(conn)] == [
        (START_UTC_MS, "up", "streaming"),
        (START_UTC_MS + 795 * 100, "down", "end of file"),
    ]
    conn.close()


def test_person_count_mae_against_hand_counts(full_run: FullRun) -> None:
    counts = json.loads(FIXTURE.read_text())["counts"]
    assert len(counts) >= 12
    errors = [abs(len(full_run.per_frame[int(f)]) - n) for f, n in counts.items()]
    mae = sum(errors) / len(errors)
    # measured 1.0 with the shipped config (README); a regression past 1.25 fails
    assert mae <= 1.25, f"MAE {mae:.2f} persons/frame, errors {errors}"


def test_track_ids_random_and_constant_within_a_track(full_run: FullRun) -> None:
    spans: dict[int, list[int]] = defaultdict(list)
    centres: dict[int, list[tuple[int, float, float, float]]] = defaultdict(list)
    for index, tracks in sorted(full_run.per_frame.items()):
        for tid, (x1, y1, x2, y2) in zip(
            tracks.track_ids.tolist(), tracks.xyxy.tolist(), strict=True
        ):
            spans[tid].append(index)
            centres[tid].append((index, (x1 + x2) / 2, (y1 + y2) / 2, y2 - y1))
    ids = np.array(list(spans), dtype=np.int64)
    # about 12-16 people walk through by eye; the stock peer makes 81 ids at 640
    assert 10 <= len(ids) <= 40, len(ids)
    # random 64-bit, not a counter
    assert np.abs(ids).max() > 2**40
    assert len(set(np.diff(np.sort(ids)).tolist())) == len(ids) - 1
    # an id stays on one person: its box centre rarely moves half a body height per frame
    # (a walker moves ~5-10 % of it; big steps are occlusion by the sign post or a swap)
    rel_steps = []
    for pts in centres.values():
        arr = np.array(pts)
        step = np.hypot(np.diff(arr[:, 1]), np.diff(arr[:, 2])) / np.maximum(np.diff(arr[:, 0]), 1)
        rel_steps += (step / arr[1:, 3]).tolist()
    jumps = np.mean(np.array(rel_steps) > 0.5)
    assert len(rel_steps) > 3000 and jumps < 0.01, f"{jumps:.2%} of steps jump"
    # and tracks are long: median life over 10 s of video
    assert np.median([s[-1] - s[0] for s in spans.values()]) > 100


def test_int8_matches_fp32(vtest: Path, example_config: BoxConfig) -> None:
    base = example_config.detector
    assert isinstance(base, OnnxDetectorConfig)
    fp32 = create_detector(base.model_copy(update={"precision": "fp32", "conf": 0.25}))
    int8 = build_detector(
        example_config.model_copy(update={"detector": base.model_copy(update={"conf": 0.25})})
    )
    frames = read_frames(vtest, list(range(7, 795, 40)))
    best: list[float] = []
    for image in frames.values():
        a, b = fp32.detect(fp32.prepare(image)), int8.detect(int8.prepare(image))
        assert abs(len(a) - len(b)) <= 2
        if len(a):
            best += iou_matrix(a.xyxy, b.xyxy).max(axis=1).tolist() if len(b) else [0.0] * len(a)
    assert len(best) > 50
    assert np.mean(np.array(best) >= 0.9) >= 0.85


@pytest.mark.peer
def test_onnx_boxes_match_ultralytics(vtest: Path) -> None:
    settings = {"person_classes": [0, 1], "input_size": (480, 640), "conf": 0.25, "iou": 0.6}
    ours = create_detector(OnnxDetectorConfig(precision="fp32", **settings))
    peer = create_detector(UltralyticsDetectorConfig(**settings))
    frames = read_frames(vtest, list(range(0, 795, 53)))
    matched = total = 0
    for image in frames.values():
        a, b = peer.detect(peer.prepare(image)), ours.detect(ours.prepare(image))
        total += len(a)
        if len(a) and len(b):
            matched += int((iou_matrix(a.xyxy, b.xyxy).max(axis=1) >= 0.9).sum())
        assert abs(len(a) - len(b)) <= 1
    assert total > 40
    assert matched / total >= 0.95, f"{matched}/{total} ultralytics boxes matched at IoU 0.9"


@pytest.mark.peer
def test_fewer_tracks_than_the_stock_peer(
    full_run: FullRun, vtest: Path, example_config: BoxConfig
) -> None:
    from lab.bench.vision import run_peer

    frames = 300
    peer = run_peer(example_config, vtest, os.cpu_count(), max_frames=frames)
    ours = {t for i, tr in full_run.per_frame.items() if i < frames for t in tr.track_ids.tolist()}
    assert peer.frames == frames
    assert len(ours) < peer.unique_tracks, (len(ours), peer.unique_tracks)
