"""Image pixels → floor-plan metres, by a homography fitted to calibration pairs.

OpenCV fits and applies the homography; it is imported when first needed, so importing
the config model (every dashboard process, the hub's config checks) does not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt

from vision.types import FloatArray

MIN_PAIRS = 4


class CalibrationError(ValueError):
    """The calibration points cannot define a floor mapping."""


@dataclass(frozen=True, slots=True)
class FloorMapping:
    """A fitted image→floor homography.

    Attributes:
        matrix: the 3x3 homography (image pixels → floor metres).
        reprojection_error_m: RMS distance in metres between each calibration
            floor point and its mapped image point.
        max_error_m: the worst calibration point.
    """

    matrix: npt.NDArray[np.float64]
    reprojection_error_m: float
    max_error_m: float

    def to_floor(self, points_px: FloatArray) -> FloatArray:
        """Map ``(N, 2)`` image points to ``(N, 2)`` floor metres."""
        if len(points_px) == 0:
            return np.zeros((0, 2), np.float32)
        import cv2

        pts = np.asarray(points_px, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.matrix).reshape(-1, 2).astype(np.float32)

    def to_image(self, points_m: FloatArray) -> FloatArray:
        """Map ``(N, 2)`` floor metres back to image pixels."""
        if len(points_m) == 0:
            return np.zeros((0, 2), np.float32)
        import cv2

        pts = np.asarray(points_m, np.float64).reshape(-1, 1, 2)
        inv = np.linalg.inv(self.matrix)
        return cv2.perspectiveTransform(pts, inv).reshape(-1, 2).astype(np.float32)


def _has_general_quad(pts: npt.NDArray[np.float64]) -> bool:
    """True if some four points have no three (nearly) on one line."""
    spread = float(np.ptp(pts, axis=0).max())
    if spread <= 0:
        return False
    unit = (pts - pts.min(axis=0)) / spread
    eps = 1e-3

    def collinear(a: int, b: int, c: int) -> bool:
        (x1, y1), (x2, y2), (x3, y3) = unit[a], unit[b], unit[c]
        return bool(abs((x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1)) < eps)

    return any(
        not any(collinear(*tri) for tri in combinations(quad, 3))
        for quad in combinations(range(len(unit)), 4)
    )


def fit_homography(
    image_points: Sequence[Sequence[float]], floor_points: Sequence[Sequence[float]]
) -> FloorMapping:
    """Fit the image→floor homography by least squares over all pairs.

    Args:
        image_points: ``N >= 4`` pixel coordinates ``[u, v]``.
        floor_points: the matching floor coordinates ``[x, y]`` in metres.

    Raises:
        CalibrationError: fewer than four pairs, mismatched lengths, or points
            in a degenerate (collinear) layout.
    """
    img = np.asarray(image_points, np.float64)
    flr = np.asarray(floor_points, np.float64)
    if img.shape != flr.shape or img.ndim != 2 or img.shape[1] != 2:
        raise CalibrationError(
            f"need matching [u, v] / [x, y] pairs, got {img.shape} and {flr.shape}"
        )
    if len(img) < MIN_PAIRS:
        raise CalibrationError(f"need at least {MIN_PAIRS} point pairs, got {len(img)}")
    for name, pts in (("image", img), ("floor", flr)):
        if not _has_general_quad(pts):
            raise CalibrationError(
                f"calibration points are degenerate: no four {name} points without three "
                "on one line (repeated or collinear points)"
            )
    import cv2

    found, _ = cv2.findHomography(img, flr, method=0)
    matrix = None if found is None else np.asarray(found, np.float64)
    if matrix is None or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
        raise CalibrationError("calibration points are degenerate (collinear or repeated)")
    mapped = cv2.perspectiveTransform(img.reshape(-1, 1, 2), matrix).reshape(-1, 2)
    err = np.linalg.norm(mapped - flr, axis=1)
    return FloorMapping(matrix, float(np.sqrt(np.mean(err**2))), float(err.max()))
