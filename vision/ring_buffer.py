"""The recent-frames ring buffer: RAM only, bounded by seconds and by bytes.

It exists for one reason: the installer's live calibration view. Nothing in it is
ever written to disk; frames older than ``max_seconds`` or beyond ``max_bytes``
are dropped on insert.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
import numpy.typing as npt

MAX_SECONDS_LIMIT = 60.0


class FrameRingBuffer:
    """A thread-safe deque of ``(t_seconds, frame)`` with two bounds.

    Args:
        max_seconds: keep frames no older than this (at most 60 s).
        max_bytes: keep at most this many bytes of pixel data.

    Raises:
        ValueError: a bound outside ``(0, 60]`` seconds or non-positive bytes.
    """

    def __init__(self, max_seconds: float = 10.0, max_bytes: int = 64 << 20) -> None:
        if not 0 < max_seconds <= MAX_SECONDS_LIMIT:
            raise ValueError(f"max_seconds must be in (0, {MAX_SECONDS_LIMIT}], got {max_seconds}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self._frames: deque[tuple[float, npt.NDArray[np.uint8]]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def push(self, t_s: float, frame: npt.NDArray[np.uint8]) -> None:
        """Add a frame (copied), then drop what is too old or over the byte bound."""
        if frame.nbytes > self.max_bytes:
            return
        with self._lock:
            self._frames.append((t_s, frame.copy()))
            self._bytes += frame.nbytes
            while self._frames and (
                self._bytes > self.max_bytes or t_s - self._frames[0][0] > self.max_seconds
            ):
                self._bytes -= self._frames.popleft()[1].nbytes

    def latest(self) -> tuple[float, npt.NDArray[np.uint8]] | None:
        """The newest frame and its time, or None."""
        with self._lock:
            return self._frames[-1] if self._frames else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    @property
    def nbytes(self) -> int:
        """Pixel bytes held now."""
        with self._lock:
            return self._bytes

    def span_seconds(self) -> float:
        """Time between the oldest and the newest frame held."""
        with self._lock:
            return self._frames[-1][0] - self._frames[0][0] if self._frames else 0.0

    def clear(self) -> None:
        """Drop every frame."""
        with self._lock:
            self._frames.clear()
            self._bytes = 0
