"""Plain data types that flow through the vision pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class TrackPoint(NamedTuple):
    """One anonymous floor position of one tracked person.

    The only thing that leaves ``vision/``: a random 64-bit track id, a UTC
    timestamp and floor coordinates in metres. No pixels, no appearance.
    """

    camera_id: str
    track_id: int
    t_utc_ms: int
    x_m: float
    y_m: float
    conf: float


@dataclass(frozen=True, slots=True)
class Detections:
    """Person boxes in source-image pixels.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes ``x1, y1, x2, y2``.
        conf: ``(N,)`` float32 scores.
        cls: ``(N,)`` int64 model class ids.
    """

    xyxy: FloatArray
    conf: FloatArray
    cls: IntArray

    @classmethod
    def empty(cls) -> Detections:
        """Return a detection set with no boxes."""
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        )

    def __len__(self) -> int:
        return int(self.conf.shape[0])


@dataclass(frozen=True, slots=True)
class Tracks:
    """Confirmed tracks in one frame (image space, random 64-bit ids)."""

    xyxy: FloatArray
    conf: FloatArray
    track_ids: IntArray

    def __len__(self) -> int:
        return int(self.conf.shape[0])

    def foot_points(self) -> FloatArray:
        """Bottom-centre of every box, ``(N, 2)`` pixels: where the person stands."""
        return np.stack(
            [(self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5, self.xyxy[:, 3]], axis=1
        ).astype(np.float32)
