"""Still images in memory: the newest ring-buffer frame as JPEG, and uploaded plan images.

This is the only place where a camera frame is encoded. The JPEG bytes live in
memory only: they are handed to the dashboard, which passes them on, opaque and
uncached, to a signed-in installer calibrating a camera. Nothing here writes a
file.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from vision.ring_buffer import FrameRingBuffer

logger = logging.getLogger(__name__)

DEFAULT_QUALITY = 80
#: The largest floor-plan image accepted (bytes and pixels per side).
MAX_PLAN_BYTES = 8 << 20
MAX_PLAN_SIDE_PX = 10_000

_SIGNATURES: dict[bytes, Literal["png", "jpeg"]] = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
}


class ImageError(ValueError):
    """Uploaded bytes are not an acceptable PNG or JPEG image."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a decoded image is.

    Attributes:
        format: ``"png"`` or ``"jpeg"``.
        width: pixels.
        height: pixels.
    """

    format: Literal["png", "jpeg"]
    width: int
    height: int

    @property
    def suffix(self) -> str:
        """The file name suffix for this format."""
        return ".png" if self.format == "png" else ".jpg"


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


def _declared_size(data: bytes, kind: Literal["png", "jpeg"]) -> tuple[int, int] | None:
    """``(width, height)`` from the header, before anything is decoded (None: not found)."""
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def check_plan_image(data: bytes) -> ImageInfo:
    """Check that uploaded bytes are a PNG or JPEG image that really decodes.

    Args:
        data: the uploaded file's bytes.

    Returns:
        The image's format and size.

    Raises:
        ImageError: empty, too large, not PNG/JPEG by its signature, undecodable, or
            too many pixels.
    """
    if not data:
        raise ImageError("the file is empty")
    if len(data) > MAX_PLAN_BYTES:
        raise ImageError(f"the file has {len(data)} bytes; the limit is {MAX_PLAN_BYTES}")
    kind = next((k for sig, k in _SIGNATURES.items() if data.startswith(sig)), None)
    if kind is None:
        raise ImageError("the file is not a PNG or JPEG image")
    declared = _declared_size(data, kind)
    if declared is None:
        raise ImageError(f"the {kind.upper()} image has no readable size in its header")
    if max(declared) > MAX_PLAN_SIDE_PX:
        w, h = declared
        raise ImageError(f"the image is {w}x{h}; at most {MAX_PLAN_SIDE_PX} px a side")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"the {kind.upper()} image is damaged and cannot be decoded")
    return ImageInfo(kind, int(image.shape[1]), int(image.shape[0]))
