"""Vectorised floor geometry: which zone a point is in, which side of a line."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


def inside(
    polygon: Sequence[tuple[float, float]], x: FloatArray, y: FloatArray, margin_m: float = 0.0
) -> BoolArray:
    """Which points lie inside (or on the edge of) a polygon shrunk by ``margin_m``."""
    poly = shapely.Polygon(polygon)
    if margin_m > 0:
        shrunk = poly.buffer(-margin_m)
        poly = shrunk if not shrunk.is_empty else poly
    shapely.prepare(poly)
    return np.asarray(shapely.intersects_xy(poly, x, y), dtype=bool)


def line_side(
    a: tuple[float, float], b: tuple[float, float], x: FloatArray, y: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Signed distance to the line a→b (positive on its left) and position along it.

    Returns:
        ``(distance_m, along)`` where ``along`` is 0 at ``a`` and 1 at ``b``.
    """
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length = float(np.hypot(dx, dy))
    dist = (dx * (y - ay) - dy * (x - ax)) / length
    along = ((x - ax) * dx + (y - ay) * dy) / (length * length)
    return dist, along
