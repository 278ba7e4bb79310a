"""Tests of vision.tracking.PersonTracker on synthetic detections, and of its random ids."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from vision.tracking import PersonTracker, TrackerSettings, random_track_id
from vision.types import Detections, Tracks

FPS = 10.0
N_FRAMES = 60
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Three walkers, far apart, moving linearly: (x0, y0, vx, vy) in pixels and pixels/frame.
PATHS: tuple[tuple[float, float, float, float], ...] = (
    (50.0, 100.0, 4.0, 0.0),
    (600.0, 300.0, -3.0, 1.0),
    (250.0, 420.0, 2.0, -2.0),
)
BOX_W, BOX_H = 40.0, 100.0

# Which walkers are visible at frame i.
Visible = Callable[[int], Sequence[int]]


def box(walker: int, i: int) -> npt.NDArray[np.float32]:
    x0, y0, vx, vy = PATHS[walker]
    x, y = x0 + vx * i, y0 + vy * i
    return np.array([x, y, x + BOX_W, y + BOX_H], np.float32)


def detections(walkers: Sequence[int], i: int) -> Detections:
    if not walkers:
        return Detections.empty()
    xyxy = np.stack([box(w, i) for w in walkers])
    n = len(walkers)
    return Detections(xyxy, np.full(n, 0.9, np.float32), np.zeros(n, np.int64))


def all_visible(i: int) -> Sequence[int]:
    return range(len(PATHS))


def walker_of(tracks: Tracks, k: int, i: int) -> int:
    """Which walker's box (at frame ``i``) the ``k``-th track is on (the tracker returns
    the matched detection boxes, so they coincide)."""
    for w in range(len(PATHS)):
        if np.allclose(tracks.xyxy[k], box(w, i), atol=0.5):
            return w
    raise AssertionError(f"track box {tracks.xyxy[k].tolist()} is on no walker at frame {i}")


def run(
    tracker: PersonTracker, n_frames: int = N_FRAMES, visible: Visible = all_visible
) -> list[dict[int, int]]:
    """Feed frames ``0..n_frames-1`` at ``t_s = i / FPS``; per frame: walker → public id."""
    out: list[dict[int, int]] = []
    for i in range(n_frames):
        tracks = tracker.update(detections(visible(i), i), i / FPS)
        assert isinstance(tracks, Tracks)
        assert tracks.xyxy.shape == (len(tracks), 4)
        assert tracks.track_ids.dtype == np.int64
        frame: dict[int, int] = {}
        for k, tid in enumerate(tracks.track_ids.tolist()):
            w = walker_of(tracks, k, i)
            assert w not in frame, f"walker {w} has two tracks at frame {i}"
            frame[w] = int(tid)
        out.append(frame)
    return out


def ids_of(frames: list[dict[int, int]], walker: int) -> list[int]:
    return [f[walker] for f in frames if walker in f]


@pytest.fixture
def settings() -> TrackerSettings:
    return TrackerSettings(high_conf=0.4, new_track_conf=0.45, lost_track_seconds=3.0, min_frames=3)


def test_each_walker_gets_one_constant_id(settings: TrackerSettings) -> None:
    frames = run(PersonTracker(FPS, settings))
    m = settings.min_frames
    # Nothing is confirmed before min_frames frames have been seen ...
    for i in range(m - 1):
        assert frames[i] == {}, (i, frames[i])
    # ... and from then on every walker has a track in every frame.
    for i in range(m - 1, N_FRAMES):
        assert set(frames[i]) == {0, 1, 2}, (i, frames[i])
    per_walker = [set(ids_of(frames, w)) for w in range(len(PATHS))]
    for w, walker_ids in enumerate(per_walker):
        assert len(walker_ids) == 1, f"walker {w} changed id: {walker_ids}"
    ids = [next(iter(s)) for s in per_walker]
    assert len(set(ids)) == 3, ids


def test_ids_are_random_64_bit(settings: TrackerSettings) -> None:
    frames = run(PersonTracker(FPS, settings))
    ids = sorted({tid for f in frames for tid in f.values()})
    assert len(ids) == 3
    for tid in ids:
        assert INT64_MIN <= tid <= INT64_MAX
    # Not small, not sequential: random draws over the 64-bit range are far apart
    # (each check fails by chance with probability < 2**-30).
    assert max(abs(t) for t in ids) > 2**32
    for a, b in itertools.pairwise(ids):
        assert abs(b - a) > 2**32, ids


def test_ids_not_stable_across_restarts(settings: TrackerSettings) -> None:
    first = run(PersonTracker(FPS, settings))
    second = run(PersonTracker(FPS, settings))
    ids1 = {tid for f in first for tid in f.values()}
    ids2 = {tid for f in second for tid in f.values()}
    assert len(ids1) == len(ids2) == 3
    assert ids1.isdisjoint(ids2)


def test_two_cameras_share_no_ids(settings: TrackerSettings) -> None:
    a, b = PersonTracker(FPS, settings), PersonTracker(FPS, settings)
    ids_a: set[int] = set()
    ids_b: set[int] = set()
    for i in range(20):
        dets = detections(all_visible(i), i)
        ids_a.update(a.update(dets, i / FPS).track_ids.tolist())
        ids_b.update(b.update(dets, i / FPS).track_ids.tolist())
    assert len(ids_a) == len(ids_b) == 3
    assert ids_a.isdisjoint(ids_b)


def gap_for_walker0(start: int, frames: int) -> Visible:
    def visible(i: int) -> Sequence[int]:
        return [1, 2] if start <= i < start + frames else [0, 1, 2]

    return visible


def test_short_gap_keeps_id(settings: TrackerSettings) -> None:
    # Walker 0 is gone for 1 s (10 frames), less than lost_track_seconds, and comes back
    # where its path has taken it by then.
    start, gap = 20, 10
    assert gap / FPS < settings.lost_track_seconds
    frames = run(PersonTracker(FPS, settings), visible=gap_for_walker0(start, gap))
    assert all(0 not in frames[i] for i in range(start, start + gap))
    before = set(ids_of(frames[:start], 0))
    after = set(ids_of(frames[start + gap :], 0))
    assert len(before) == 1
    assert after == before, (before, after)
    # It is back from the first frame it is seen again.
    assert 0 in frames[start + gap]
    # The other walkers are not disturbed.
    for w in (1, 2):
        assert len(set(ids_of(frames, w))) == 1


def test_long_gap_gets_new_id(settings: TrackerSettings) -> None:
    # Gone for 6 s (60 frames), more than lost_track_seconds: a new, unrelated id.
    start, gap, n = 20, 60, 110
    assert gap / FPS > settings.lost_track_seconds
    frames = run(PersonTracker(FPS, settings), n_frames=n, visible=gap_for_walker0(start, gap))
    before = set(ids_of(frames[:start], 0))
    after = set(ids_of(frames[start + gap :], 0))
    assert len(before) == 1
    assert len(after) == 1, after
    assert before.isdisjoint(after)
    others = {tid for f in frames for w, tid in f.items() if w != 0}
    assert after.isdisjoint(others)
    # The new track needs min_frames again before it is reported.
    back = start + gap
    assert all(0 not in frames[i] for i in range(back, back + settings.min_frames - 1))
    assert 0 in frames[back + settings.min_frames - 1]


def test_lost_track_seconds_is_seconds_not_frames(settings: TrackerSettings) -> None:
    # The lost-track window is seconds of capture time: at 10 fps a 2 s gap (20 frames)
    # is re-found and a 4 s gap (40 frames) is not. A window counted in frames
    # (3 s x 30 fps = 90 frames) would keep both.
    for gap_s, kept in ((2.0, True), (4.0, False)):
        start, gap = 20, round(gap_s * FPS)
        frames = run(
            PersonTracker(FPS, settings),
            n_frames=start + gap + 20,
            visible=gap_for_walker0(start, gap),
        )
        before = set(ids_of(frames[:start], 0))
        after = set(ids_of(frames[start + gap :], 0))
        assert len(before) == len(after) == 1
        assert (before == after) is kept, (gap_s, before, after)


def test_empty_frames_give_empty_tracks(settings: TrackerSettings) -> None:
    tracker = PersonTracker(FPS, settings)
    for i in range(5):
        tracks = tracker.update(Detections.empty(), i / FPS)
        assert len(tracks) == 0
        assert tracks.xyxy.shape == (0, 4)
        assert tracks.foot_points().shape == (0, 2)


def test_random_track_id_draws() -> None:
    draws = [random_track_id() for _ in range(10_000)]
    assert len(set(draws)) == len(draws)
    assert all(isinstance(d, int) for d in draws)
    assert all(INT64_MIN <= d <= INT64_MAX for d in draws)
    neg = sum(d < 0 for d in draws)
    assert 4_000 < neg < 6_000, neg  # about half negative, half positive
    # The high bits vary: not small numbers.
    assert sum(abs(d) > 2**60 for d in draws) > 8_000


def test_foot_points_are_bottom_centres() -> None:
    xyxy = np.array([[10, 20, 50, 120], [100.5, 0, 101.5, 7], [0, 0, 0, 0]], np.float32)
    tracks = Tracks(xyxy, np.ones(3, np.float32), np.array([1, 2, 3], np.int64))
    feet = tracks.foot_points()
    assert feet.shape == (3, 2)
    assert feet.dtype == np.float32
    expected = np.array([[30, 120], [101, 7], [0, 0]], np.float32)
    np.testing.assert_allclose(feet, expected)


def test_foot_points_of_tracker_output(settings: TrackerSettings) -> None:
    tracker = PersonTracker(FPS, settings)
    tracks = Tracks(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    for i in range(5):
        tracks = tracker.update(detections(all_visible(i), i), i / FPS)
    assert len(tracks) == 3
    for k, (x, y) in enumerate(tracks.foot_points().tolist()):
        w = walker_of(tracks, k, 4)
        x1, _, x2, y2 = box(w, 4).tolist()
        assert x == pytest.approx((x1 + x2) / 2)
        assert y == pytest.approx(y2)
