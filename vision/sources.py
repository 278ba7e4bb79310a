"""Frame sources (video file, RTSP/HTTP, USB) and a resilient reader thread.

The reader decodes (and letterboxes, through the detector's ``prepare``) the next
frame while the network runs on the current one. A source that cannot be opened,
or stops delivering, is retried with exponential backoff and reported *down*
for that time: down is "we don't know", never "zero people".
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from vision.redaction import redact

logger = logging.getLogger(__name__)

#: ``(state, detail, t_utc_ms)``: the time is on the source's own clock
StateCallback = Callable[[Literal["up", "down"], str, int], None]
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000


class SourceError(RuntimeError):
    """A source could not be opened or stopped delivering frames.

    The message is redacted (:func:`vision.redaction.redact`): a camera URL's
    password or token never reaches a log, an event or a page through it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: 0-based frame number since the source was opened.
        t_s: capture time in seconds on the source's own clock (video time for
            files, wall clock for live sources), monotonic per source.
        t_utc_ms: capture time as UTC epoch milliseconds.
        image: BGR pixels.
    """

    index: int
    t_s: float
    t_utc_ms: int
    image: npt.NDArray[np.uint8]


class FrameSource(Protocol):
    """Anything that yields frames."""

    fps: float

    def open(self) -> None:
        """Open the device or file; raise :class:`SourceError` on failure."""

    def read(self) -> Frame | None:
        """Next frame; None at the end of a file; raise :class:`SourceError` on failure."""

    def close(self) -> None:
        """Release the device or file."""

    def clock_utc_ms(self) -> int:
        """The source's time now (UTC ms): video time for files, the wall clock for live."""


def _capture(target: str | int) -> Any:
    if isinstance(target, int):
        cap = cv2.VideoCapture(target)
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            READ_TIMEOUT_MS,
        ]
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {target!r}")
    return cap


class VideoFileSource:
    """A video file, timed by its own clock.

    Args:
        path: the file.
        start_utc_ms: UTC time of the file's first frame.
        realtime: pace reading to the file's frame rate (a stand-in camera) instead
            of as fast as possible.
        loop: start again at the end (a stand-in camera that never ends); time
            keeps running forward.
    """

    def __init__(
        self, path: Path, start_utc_ms: int, *, realtime: bool = False, loop: bool = False
    ) -> None:
        self.path = path
        self.start_utc_ms = start_utc_ms
        self.realtime = realtime
        self.loop = loop
        self.fps = 0.0
        self._cap: Any = None
        self._index = 0
        self._t0_wall = 0.0

    def open(self) -> None:
        """Open the file and read its frame rate."""
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        self._cap = _capture(str(self.path))
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 25.0
        self._t0_wall = time.monotonic() - self._index / self.fps

    def read(self) -> Frame | None:
        """Decode the next frame (video time = frame index / fps)."""
        ok, image = self._cap.read()
        if not ok and self.loop and self._index > 0:
            self._cap.release()
            self._cap = _capture(str(self.path))
            ok, image = self._cap.read()
        if not ok:
            return None
        t_s = self._index / self.fps
        if self.realtime:
            delay = self._t0_wall + t_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frame = Frame(self._index, t_s, self.start_utc_ms + round(t_s * 1000), image)
        self._index += 1
        return frame

    def close(self) -> None:
        """Release the file."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def clock_utc_ms(self) -> int:
        """Video time of the next frame, so up/down events line up with the points."""
        return self.start_utc_ms + (round(self._index / self.fps * 1000) if self.fps else 0)


class LiveSource:
    """An RTSP/HTTP stream or a USB camera, timed by the wall clock.

    Args:
        target: a URL, or a USB device index.
        expected_fps: used when the stream does not report its rate.
    """

    def __init__(self, target: str | int, expected_fps: float) -> None:
        self.target = target
        self.fps = expected_fps
        self._cap: Any = None
        self._index = 0

    def open(self) -> None:
        """Connect to the stream or device."""
        self._cap = _capture(self.target)
        reported = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if 0 < reported <= 120:
            self.fps = reported

    def read(self) -> Frame | None:
        """Grab the next frame; a failed read is a :class:`SourceError` (live never ends)."""
        ok, image = self._cap.read()
        if not ok:
            raise SourceError(f"{self.target!r} stopped delivering frames")
        now = time.time()
        frame = Frame(self._index, time.monotonic(), round(now * 1000), image)
        self._index += 1
        return frame

    def close(self) -> None:
        """Release the stream."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def clock_utc_ms(self) -> int:
        """The wall clock."""
        return round(time.time() * 1000)


def open_source(
    spec: str, expected_fps: float, *, start_utc_ms: int | None = None, loop: bool = False
) -> FrameSource:
    """Build a source from a config string.

    Args:
        spec: ``rtsp://…``/``http(s)://…`` stream, ``usb:N`` device, or a file path.
        expected_fps: the camera's nominal rate.
        start_utc_ms: for files: UTC time of the first frame (None: now, and paced
            in real time like a camera).
        loop: for files: restart at the end.
    """
    if spec.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return LiveSource(spec, expected_fps)
    if spec.startswith("usb:"):
        return LiveSource(int(spec[4:]), expected_fps)
    realtime = start_utc_ms is None
    start = round(time.time() * 1000) if start_utc_ms is None else start_utc_ms
    return VideoFileSource(Path(spec).expanduser(), start, realtime=realtime, loop=loop)


_END = object()


class FrameReader:
    """A thread that opens, reads and prepares frames ahead of the consumer.

    Args:
        source: the frame source.
        prepare: the detector's cheap per-frame preparation (runs in this thread).
        on_state: called with ``("up" | "down", detail)`` when availability changes.
        lossless: block when the consumer is behind (files) instead of dropping the
            oldest frame (live cameras must not lag).
        backoff: first and maximum retry delay in seconds.
        depth: frames prepared ahead.
    """

    def __init__(
        self,
        source: FrameSource,
        prepare: Callable[[npt.NDArray[np.uint8]], Any],
        on_state: StateCallback,
        *,
        lossless: bool,
        backoff: tuple[float, float] = (1.0, 30.0),
        depth: int = 3,
    ) -> None:
        self.source = source
        self._prepare = prepare
        self._on_state = on_state
        self._lossless = lossless
        self._backoff = backoff
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="footfall-reader", daemon=True)
        self.dropped = 0
        self.state: Literal["up", "down"] | None = None

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the reader to stop and wait for it."""
        self._stop.set()
        while True:  # unblock a lossless put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)

    def get(self, timeout: float) -> tuple[Frame, Any] | None:
        """The next ``(frame, prepared)``; None when a file ended or the reader stopped.

        Raises:
            queue.Empty: nothing arrived within ``timeout`` (e.g. source down).
        """
        item = self._queue.get(timeout=timeout)
        return None if item is _END else item

    def _set_state(self, state: Literal["up", "down"], detail: str) -> None:
        if state != self.state:
            self.state = state
            log = logger.info if state == "up" else logger.warning
            log("source %s: %s", state, detail)
            self._on_state(state, detail, self.source.clock_utc_ms())

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if not self._lossless:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                self.source.open()
                self._set_state("up", "streaming")
                delay = self._backoff[0]
                while not self._stop.is_set():
                    frame = self.source.read()
                    if frame is None:
                        # a file that ended sees nothing more: not a silent zero after it
                        self._set_state("down", "end of file")
                        self._put(_END)
                        return
                    self._put((frame, self._prepare(frame.image)))
            except SourceError as exc:
                self._set_state("down", str(exc))
            finally:
                self.source.close()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._backoff[1])
        self._put(_END)


def frame_count(path: Path) -> int | None:
    """The number of frames a video file's container declares (None where it declares none)."""
    cap = cv2.VideoCapture(str(path))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return n if n > 0 else None
