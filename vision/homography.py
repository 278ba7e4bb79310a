"""Image pixels → floor-plan metres, by a homography fitted to calibration pairs.

The fit is plain numpy (OpenCV's ``findHomography`` with ``method=0``, re-done): loading
or checking a config fits every camera's homography, and does not load OpenCV for it.
Mapping points (per frame) is OpenCV's ``perspectiveTransform``, imported when first used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt

from vision.types import FloatArray

MIN_PAIRS = 4
_REFINE_STEPS = 10  # Levenberg-Marquardt steps after the linear fit (OpenCV's default)
F64 = npt.NDArray[np.float64]


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
        import cv2  # here: fitting (a config check) needs no OpenCV, mapping frames does

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


def _transform(matrix: F64, pts: F64) -> F64:
    """``(N, 2)`` points through a homography, as ``cv2.perspectiveTransform`` maps them."""
    pts = pts.reshape(-1, 2)
    out = pts @ matrix[:, :2].T + matrix[:, 2]
    w = out[:, 2:]
    scale = np.divide(1.0, w, out=np.zeros_like(w), where=np.abs(w) > np.finfo(np.float64).eps)
    return np.asarray(out[:, :2] * scale, np.float64)


def _normalising(pts: F64) -> F64:
    """The similarity that moves ``pts`` to their centroid with mean distance 1 per axis."""
    centre = pts.mean(axis=0)
    spread = np.abs(pts - centre).mean(axis=0)
    sx, sy = (1.0 / s if s > 0 else 1.0 for s in spread)
    return np.array([[sx, 0.0, -sx * centre[0]], [0.0, sy, -sy * centre[1]], [0.0, 0.0, 1.0]])


def _linear_fit(img: F64, flr: F64) -> F64:
    """The normalised direct linear transform: the algebraic least-squares homography."""
    t_img, t_flr = _normalising(img), _normalising(flr)
    (x, y), (u, v) = _transform(t_img, img).T, _transform(t_flr, flr).T
    one, zero = np.ones_like(x), np.zeros_like(x)
    rows = np.concatenate(
        [
            np.stack([x, y, one, zero, zero, zero, -u * x, -u * y, -u], axis=1),
            np.stack([zero, zero, zero, x, y, one, -v * x, -v * y, -v], axis=1),
        ]
    )
    normalised = np.linalg.svd(rows)[2][-1].reshape(3, 3)
    matrix: F64 = np.linalg.inv(t_flr) @ normalised @ t_img
    return np.asarray(matrix / matrix[2, 2], np.float64)


def _refine(matrix: F64, img: F64, flr: F64) -> F64:
    """Levenberg-Marquardt on the floor-space error, ``matrix[2, 2]`` held at 1."""
    h = matrix.reshape(-1)[:8].copy()
    x, y = img[:, 0], img[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)

    def residuals(p: F64) -> F64:
        return (_transform(np.append(p, 1.0).reshape(3, 3), img) - flr).reshape(-1)

    damping = 1e-3
    err = residuals(h)
    for _ in range(_REFINE_STEPS):
        w = h[6] * x + h[7] * y + 1.0
        mapped = (err.reshape(-1, 2) + flr).T
        jac = np.empty((len(x), 2, 8))
        jac[:, 0] = np.stack([x, y, one, zero, zero, zero, -mapped[0] * x, -mapped[0] * y], 1)
        jac[:, 1] = np.stack([zero, zero, zero, x, y, one, -mapped[1] * x, -mapped[1] * y], 1)
        jac = (jac / w[:, None, None]).reshape(-1, 8)
        normal = jac.T @ jac
        step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), -jac.T @ err)
        trial = residuals(h + step)
        if trial @ trial < err @ err:
            h, err, damping = h + step, trial, damping / 10
        else:
            damping *= 10
    return np.append(h, 1.0).reshape(3, 3)


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
    degenerate = CalibrationError("calibration points are degenerate (collinear or repeated)")
    try:
        with np.errstate(all="ignore"):
            matrix = _refine(_linear_fit(img, flr), img, flr)
    except np.linalg.LinAlgError as exc:
        raise degenerate from exc
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
        raise degenerate
    mapped = _transform(matrix, img)
    err = np.linalg.norm(mapped - flr, axis=1)
    return FloorMapping(matrix, float(np.sqrt(np.mean(err**2))), float(err.max()))
