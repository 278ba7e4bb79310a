"""Tests of vision.ring_buffer.FrameRingBuffer: RAM-only, bounded by seconds and bytes."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import pytest

from vision.ring_buffer import FrameRingBuffer

Frame = npt.NDArray[np.uint8]


def frame(value: int = 0, shape: tuple[int, ...] = (24, 32, 3)) -> Frame:
    return np.full(shape, value % 256, dtype=np.uint8)


def test_bounded_by_seconds() -> None:
    buf = FrameRingBuffer(max_seconds=5.0, max_bytes=1 << 30)
    for i in range(300):  # 30 s at 10 fps
        t = i / 10
        buf.push(t, frame(i))
        assert buf.span_seconds() <= 5.0
        assert len(buf) <= 51
        latest = buf.latest()
        assert latest is not None
        assert latest[0] == t
    # It drops only what is too old: a full 5 s window is still held.
    assert len(buf) >= 50
    assert buf.span_seconds() >= 4.9
    assert buf.nbytes == len(buf) * frame().nbytes


def test_bounded_by_bytes() -> None:
    one = frame().nbytes
    max_bytes = int(one * 10.5)
    buf = FrameRingBuffer(max_seconds=60.0, max_bytes=max_bytes)
    for i in range(100):
        buf.push(i / 10, frame(i))
        assert buf.nbytes <= max_bytes
        assert len(buf) <= 10
    # Never more than needed is dropped: ten frames fit, so ten are held.
    assert len(buf) == 10
    assert buf.nbytes == 10 * one


def test_bounded_by_bytes_with_mixed_sizes() -> None:
    max_bytes = 50_000
    buf = FrameRingBuffer(max_seconds=60.0, max_bytes=max_bytes)
    rng = np.random.default_rng(1)
    for i in range(200):
        h, w = (int(x) for x in rng.integers(4, 80, size=2))
        f = frame(i, (h, w, 3))
        buf.push(i / 30, f)
        assert buf.nbytes <= max_bytes
        latest = buf.latest()
        assert latest is not None
        assert latest[1].shape == f.shape


@pytest.mark.parametrize("seconds", [60.001, 61.0, 3600.0, 0.0, -1.0])
def test_bad_seconds_bound_raises(seconds: float) -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        FrameRingBuffer(max_seconds=seconds)


@pytest.mark.parametrize("max_bytes", [0, -1])
def test_bad_bytes_bound_raises(max_bytes: int) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        FrameRingBuffer(max_bytes=max_bytes)


def test_limits_themselves_are_accepted() -> None:
    buf = FrameRingBuffer(max_seconds=60.0, max_bytes=1)
    assert buf.max_seconds == 60.0
    assert buf.max_bytes == 1
    assert len(buf) == 0
    assert buf.latest() is None
    assert buf.span_seconds() == 0.0


def test_frame_bigger_than_max_bytes_is_not_stored() -> None:
    small = frame(1, (10, 10, 3))
    buf = FrameRingBuffer(max_seconds=10.0, max_bytes=small.nbytes * 2)
    buf.push(0.0, small)
    buf.push(0.1, frame(2, (100, 100, 3)))
    assert len(buf) == 1
    assert buf.nbytes == small.nbytes
    latest = buf.latest()
    assert latest is not None
    assert latest[0] == 0.0
    assert np.array_equal(latest[1], small)
    # Into an empty buffer too.
    empty = FrameRingBuffer(max_seconds=10.0, max_bytes=10)
    empty.push(0.0, small)
    assert len(empty) == 0
    assert empty.nbytes == 0
    assert empty.latest() is None


def test_pushed_frames_are_copies() -> None:
    buf = FrameRingBuffer(max_seconds=10.0, max_bytes=1 << 20)
    src = frame(7)
    buf.push(1.0, src)
    src[...] = 99
    src[0, 0, 0] = 1
    latest = buf.latest()
    assert latest is not None
    assert latest[1] is not src
    assert not np.shares_memory(latest[1], src)
    assert (latest[1] == 7).all()


def test_latest_returns_newest() -> None:
    buf = FrameRingBuffer(max_seconds=10.0, max_bytes=1 << 20)
    assert buf.latest() is None
    for i in range(5):
        buf.push(float(i), frame(i))
        latest = buf.latest()
        assert latest is not None
        t, f = latest
        assert t == float(i)
        assert (f == i).all()


def test_clear_empties() -> None:
    buf = FrameRingBuffer(max_seconds=10.0, max_bytes=1 << 20)
    for i in range(5):
        buf.push(i / 10, frame(i))
    buf.clear()
    assert len(buf) == 0
    assert buf.nbytes == 0
    assert buf.latest() is None


@pytest.mark.parametrize(
    ("max_seconds", "cap_frames", "expected_len"),
    [
        pytest.param(2.0, 30, (30, 30), id="bytes-bind"),  # 2 s = 84 frames > 30
        pytest.param(1.0, 200, (40, 44), id="seconds-bind"),  # 1 s = 10-11 rounds x 4
    ],
)
def test_concurrent_pushes_keep_bounds(
    max_seconds: float, cap_frames: int, expected_len: tuple[int, int]
) -> None:
    # Four writer threads push at once; a barrier between rounds keeps the timestamps
    # non-decreasing (all four push the same t in a round, concurrently), so the time
    # bound is exact. A reader thread checks the bounds while they run.
    n_threads, rounds, dt = 4, 300, 0.1
    one = frame().nbytes
    max_bytes = one * cap_frames + one // 2
    buf = FrameRingBuffer(max_seconds=max_seconds, max_bytes=max_bytes)
    barrier = threading.Barrier(n_threads)
    done = threading.Event()
    violations: list[str] = []
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait()
                buf.push(r * dt, frame(r * n_threads + k))
                barrier.wait()
                if buf.nbytes > max_bytes:
                    violations.append(f"writer {k}: nbytes {buf.nbytes} > {max_bytes}")
                if buf.span_seconds() > max_seconds:
                    violations.append(f"writer {k}: span {buf.span_seconds()} > {max_seconds}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    def reader() -> None:
        while not done.is_set():
            nbytes, span, n = buf.nbytes, buf.span_seconds(), len(buf)
            if nbytes > max_bytes:
                violations.append(f"reader: nbytes {nbytes} > {max_bytes}")
            if span > max_seconds:
                violations.append(f"reader: span {span} > {max_seconds}")
            if n > cap_frames:
                violations.append(f"reader: len {n} > {cap_frames}")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    done.set()
    watcher.join(timeout=60)

    assert not errors, errors
    assert not any(th.is_alive() for th in [*threads, watcher])
    assert not violations, violations[:5]
    assert buf.nbytes <= max_bytes
    assert buf.span_seconds() <= max_seconds
    # The byte counter agrees with what is held (no lost updates under contention).
    assert buf.nbytes == len(buf) * one
    lo, hi = expected_len
    assert lo <= len(buf) <= hi
    latest = buf.latest()
    assert latest is not None
    assert latest[0] == pytest.approx((rounds - 1) * dt)
