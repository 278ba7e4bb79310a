"""Still images in memory: the newest ring-buffer frame as JPEG, and uploaded plan images.

This is the only place where a camera frame is encoded. The JPEG bytes live in
memory only: they are handed to the dashboard, which passes them on, opaque and
uncached, to a signed-in installer calibrating a camera. Nothing here writes a
file.

An uploaded plan image shares the process with the cameras, so it is decoded only
when its header declares a size within the decoded-pixel budget, one at a time, and
only its re-encoded pixels are kept.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from cv2.typing import MatLike

from vision.ring_buffer import FrameRingBuffer

logger = logging.getLogger(__name__)

DEFAULT_QUALITY = 80
#: The largest floor-plan image accepted (bytes and pixels per side).
MAX_PLAN_BYTES = 8 << 20
MAX_PLAN_SIDE_PX = 10_000
#: The decoded-pixel budget of a plan image, checked from its header before decoding:
#: at most this many pixels, and this many bytes of decoder memory (pixels x samples x
#: bytes per sample, plus a multi-scan JPEG's whole-image coefficients).
MAX_PLAN_PIXELS = 25_000_000
MAX_PLAN_DECODE_BYTES = 64 << 20
#: The quality an accepted JPEG plan is re-encoded with.
PLAN_JPEG_QUALITY = 92
#: Seconds an upload refused while another plan image decodes is told to wait.
DECODE_RETRY_S = 5

_SIGNATURES: dict[bytes, Literal["png", "jpeg"]] = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
}
#: PNG colour type → samples per pixel as OpenCV decodes it (a palette may gain alpha).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}
#: JPEG start-of-frame markers (not DHT, JPG, DAC) and the progressive ones among them.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
#: JPEG markers without a length, or that cannot come before the frame header.
_JPEG_NO_FRAME_BEFORE = frozenset({0x00, 0x01, *range(0xD0, 0xDB)})
_DECODING = threading.Lock()


class ImageError(ValueError):
    """Uploaded bytes are not an acceptable PNG or JPEG image."""


class DecoderBusyError(RuntimeError):
    """Another plan image is being decoded; one at a time keeps the cameras' memory safe."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an accepted image is, and its pixels re-encoded.

    Attributes:
        format: ``"png"`` or ``"jpeg"``.
        width: pixels.
        height: pixels.
        data: the image re-encoded from its decoded pixels: no metadata, nothing appended.
    """

    format: Literal["png", "jpeg"]
    width: int
    height: int
    data: bytes = field(default=b"", repr=False)

    @property
    def suffix(self) -> str:
        """The file name suffix for this format."""
        return ".png" if self.format == "png" else ".jpg"


@dataclass(frozen=True, slots=True)
class _Header:
    """What a header declares: the size, and the bytes decoding it would take."""

    width: int
    height: int
    decode_bytes: int


def encode_jpeg(frame: npt.NDArray[np.uint8], quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode a BGR (or grey) frame as JPEG bytes, in memory.

    Args:
        frame: ``(H, W, 3)`` BGR or ``(H, W)`` grey pixels.
        quality: JPEG quality, 1-100.

    Raises:
        ValueError: the quality is out of range or OpenCV cannot encode the frame.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {frame.shape} {frame.dtype} frame as JPEG")
    return bytes(buf)


def latest_jpeg(ring: FrameRingBuffer, quality: int = DEFAULT_QUALITY) -> bytes | None:
    """The newest frame of ``ring`` as JPEG bytes, or None when it holds no frame."""
    newest = ring.latest()
    return None if newest is None else encode_jpeg(newest[1], quality)


def frame_provider(
    rings: Mapping[str, FrameRingBuffer], quality: int = DEFAULT_QUALITY
) -> Callable[[str], bytes | None]:
    """A dashboard frame provider: camera id → its newest frame as JPEG (None: none yet).

    Args:
        rings: each camera's ring buffer, by camera id.
        quality: JPEG quality.
    """

    def newest(camera_id: str) -> bytes | None:
        ring = rings.get(camera_id)
        return None if ring is None else latest_jpeg(ring, quality)

    return newest


def _unreadable(kind: str) -> ImageError:
    return ImageError(f"the {kind} image has no readable size in its header")


def _png_header(data: bytes) -> _Header:
    """The size and decoding cost declared by a PNG's IHDR (the first chunk, always)."""
    if len(data) < 29 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise _unreadable("PNG")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    samples = _PNG_SAMPLES.get(colour)
    if samples is None or depth not in (1, 2, 4, 8, 16):
        raise ImageError(f"the PNG image has an invalid header (depth {depth}, colour {colour})")
    return _Header(width, height, width * height * samples * (2 if depth == 16 else 1))


def _jpeg_header(data: bytes) -> _Header:
    """The size and decoding cost declared by a JPEG's frame header (SOFn).

    Anything but well-formed marker segments before the frame header is refused, so
    that what is checked here is the frame the decoder will read.
    """
    i = 2
    while True:
        if i + 4 > len(data) or data[i] != 0xFF:
            raise _unreadable("JPEG")
        while data[i + 1] == 0xFF and i + 5 <= len(data):  # fill bytes before a marker
            i += 1
        marker = data[i + 1]
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_NO_FRAME_BEFORE or length < 2:
            raise _unreadable("JPEG")
        if marker in _JPEG_FRAMES:
            return _jpeg_frame(data, i + 4, i + 2 + length, marker)
        i += 2 + length


def _jpeg_frame(data: bytes, start: int, end: int, marker: int) -> _Header:
    """The frame header's size and decoding cost.

    Decoding makes BGR pixels, and needs whole-image coefficients when the image comes
    in more than one scan (progressive, or one scan per component).
    """
    frame = data[start:end]
    if len(frame) < 6:
        raise _unreadable("JPEG")
    height, width, count = struct.unpack(">HHB", frame[1:6])
    factors = [(hv >> 4, hv & 0x0F) for hv in frame[7 : 6 + 3 * count : 3]]
    if height == 0 or len(factors) != count or not all(1 <= f <= 4 for p in factors for f in p):
        raise _unreadable("JPEG")
    cost = width * height * 3
    if marker in _JPEG_PROGRESSIVE or data.count(b"\xff\xda", end) > 1:
        h_max, v_max = max(h for h, _ in factors), max(v for _, v in factors)
        for h, v in factors:
            blocks = math.ceil(width * h / h_max / 8) * math.ceil(height * v / v_max / 8)
            cost += blocks * 64 * 2  # 64 16-bit coefficients a block
    return _Header(width, height, cost)


@contextmanager
def decode_slot() -> Iterator[None]:
    """Hold the one slot for decoding a plan image.

    Raises:
        DecoderBusyError: another plan image is being decoded right now.
    """
    if not _DECODING.acquire(blocking=False):
        raise DecoderBusyError("another plan image is being decoded; try again in a moment")
    try:
        yield
    finally:
        _DECODING.release()


def _check_budget(header: _Header) -> None:
    w, h = header.width, header.height
    if min(w, h) < 1:
        raise ImageError(f"the image is {w}x{h}: it has no pixels")
    if max(w, h) > MAX_PLAN_SIDE_PX:
        raise ImageError(f"the image is {w}x{h}; at most {MAX_PLAN_SIDE_PX} px a side")
    if w * h > MAX_PLAN_PIXELS:
        raise ImageError(
            f"the image is {w}x{h} ({w * h / 1e6:.1f} Mpx); at most {MAX_PLAN_PIXELS / 1e6:g} Mpx"
        )
    if header.decode_bytes > MAX_PLAN_DECODE_BYTES:
        raise ImageError(
            f"the image is {w}x{h} and needs {header.decode_bytes / (1 << 20):.0f} MB to "
            f"decode; the budget is {MAX_PLAN_DECODE_BYTES >> 20} MB"
        )


def _reencode(image: MatLike, kind: Literal["png", "jpeg"]) -> bytes:
    jpeg = kind == "jpeg"
    params = [cv2.IMWRITE_JPEG_QUALITY, PLAN_JPEG_QUALITY] if jpeg else []
    ok, buf = cv2.imencode(".jpg" if jpeg else ".png", image, params)
    if not ok:
        raise ImageError(f"the {image.shape} {image.dtype} image cannot be re-encoded as {kind}")
    return bytes(buf)


def check_plan_image(data: bytes) -> ImageInfo:
    """Check that uploaded bytes are a PNG or JPEG image within budget, and re-encode it.

    The size and decoding cost are read from the header first; only an image within
    :data:`MAX_PLAN_PIXELS` and :data:`MAX_PLAN_DECODE_BYTES` is decoded, one at a
    time. The decoded pixels are encoded again in the same format, so that no
    metadata (EXIF, GPS, text chunks) nor anything appended to the file is kept; a
    JPEG's EXIF orientation is applied to its pixels.

    Args:
        data: the uploaded file's bytes.

    Returns:
        The image's format, size (after orientation) and re-encoded bytes.

    Raises:
        ImageError: empty, too large, not PNG/JPEG by its signature, over the
            decoded-pixel budget, or undecodable.
        DecoderBusyError: another plan image is being decoded.
    """
    if not data:
        raise ImageError("the file is empty")
    if len(data) > MAX_PLAN_BYTES:
        raise ImageError(f"the file has {len(data)} bytes; the limit is {MAX_PLAN_BYTES}")
    kind = next((k for sig, k in _SIGNATURES.items() if data.startswith(sig)), None)
    if kind is None:
        raise ImageError("the file is not a PNG or JPEG image")
    _check_budget(_png_header(data) if kind == "png" else _jpeg_header(data))
    flags = cv2.IMREAD_UNCHANGED if kind == "png" else cv2.IMREAD_COLOR  # COLOR: EXIF rotation
    with decode_slot():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if image is None:
            raise ImageError(f"the {kind.upper()} image is damaged and cannot be decoded")
        clean = _reencode(image, kind)
    return ImageInfo(kind, int(image.shape[1]), int(image.shape[0]), clean)
