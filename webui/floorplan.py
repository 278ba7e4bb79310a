"""The floor plan as SVG shapes in metres: the floor, zones by kind, lines with their in-side.

SVG user units are floor metres (origin top-left, y towards the front), so zone
polygons, heatmap cells and live positions are drawn without any conversion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from appliance.config import BoxConfig

ZONE_KIND_LABELS = {
    "entrance": "entrance",
    "display": "display",
    "queue": "queue",
    "service_point": "service point",
    "checkout": "checkout",
    "staff_only": "staff only",
}


@dataclass(frozen=True)
class PlanZone:
    """A zone's polygon (``points`` in SVG syntax) and where its label goes."""

    id: str
    kind: str
    points: str
    label_x: float
    label_y: float


@dataclass(frozen=True)
class PlanLine:
    """A counting line and an arrow pointing to its inside."""

    id: str
    x1: float
    y1: float
    x2: float
    y2: float
    arrow: str  # polygon points of the arrow (shaft and head)


@dataclass(frozen=True)
class Plan:
    """Everything the plan SVG draws, in metres."""

    width_m: float
    depth_m: float
    zones: list[PlanZone]
    lines: list[PlanLine]

    @property
    def font_m(self) -> float:
        """A label size that reads well on any floor size."""
        return round(max(self.width_m, self.depth_m) / 45, 3)

    @property
    def dot_m(self) -> float:
        """The radius of a person's dot."""
        return round(max(0.25, max(self.width_m, self.depth_m) / 120), 3)


def _fmt(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in points)


def in_side_arrow(
    a: tuple[float, float], b: tuple[float, float], in_side: str, length_m: float
) -> list[tuple[float, float]]:
    """An arrow from the line's middle towards its inside (left or right of a→b).

    "Left" is where :func:`appliance.analytics.geometry.line_side` is positive,
    i.e. the normal ``(-dy, dx)`` in floor coordinates.
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    norm = math.hypot(dx, dy)
    nx, ny = -dy / norm, dx / norm
    if in_side == "right":
        nx, ny = -nx, -ny
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    tx, ty = -ny, nx  # along the line
    shaft, head = length_m * 0.08, length_m * 0.3
    tip = (mx + nx * length_m, my + ny * length_m)
    neck = (mx + nx * (length_m - head), my + ny * (length_m - head))
    return [
        (mx + tx * shaft, my + ty * shaft),
        (neck[0] + tx * shaft, neck[1] + ty * shaft),
        (neck[0] + tx * head * 0.6, neck[1] + ty * head * 0.6),
        tip,
        (neck[0] - tx * head * 0.6, neck[1] - ty * head * 0.6),
        (neck[0] - tx * shaft, neck[1] - ty * shaft),
        (mx - tx * shaft, my - ty * shaft),
    ]


def plan_of(config: BoxConfig) -> Plan:
    """The plan of a store config."""
    fp = config.floor_plan
    zones = []
    for z in config.zones:
        xs, ys = [p[0] for p in z.polygon], [p[1] for p in z.polygon]
        zones.append(PlanZone(z.id, z.kind, _fmt(list(z.polygon)), min(xs) + 0.15, min(ys) + 0.15))
    arrow_m = max(fp.width_m, fp.depth_m) / 25
    lines = [
        PlanLine(
            ln.id, ln.a[0], ln.a[1], ln.b[0], ln.b[1],
            _fmt(in_side_arrow(ln.a, ln.b, ln.in_side, arrow_m)),
        )
        for ln in config.lines
    ]  # fmt: skip
    return Plan(fp.width_m, fp.depth_m, zones, lines)
