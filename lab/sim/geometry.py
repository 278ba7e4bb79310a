"""The store as the simulator sees it: the box's own store config, plus a walkable area.

Floor plan, counting lines and zones are the box's config models
(:class:`appliance.config.BoxConfig`, :class:`~appliance.config.LineConfig`,
:class:`~appliance.config.ZoneConfig`), so the simulated store and the analytics
share one geometry and one validation. This module adds what only the simulator
needs: the walkable area (the floor minus shelves and counters), the side of a
line a point is on, shapely shapes, and standing points.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from appliance.config import BoxConfig, LineConfig, ZoneConfig

log = logging.getLogger(__name__)

Point = tuple[float, float]


class GeometryError(ValueError):
    """The store geometry is unusable for a simulation (its walkable area, a point)."""


def line_side(line: LineConfig, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``cross(b - a, p - a)`` for each point (positive: left of a→b)."""
    (ax, ay), (bx, by) = line.a, line.b
    return np.asarray((bx - ax) * (ys - ay) - (by - ay) * (xs - ax), dtype=np.float64)


def inside_of(line: LineConfig, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Whether each point is strictly on the inside of the line (on it counts as outside).

    ``in_side="left"`` means the inside of the store is where ``cross(b - a, p - a) > 0``.
    """
    s = line_side(line, xs, ys)
    return np.asarray(s > 0 if line.in_side == "left" else s < 0)


def line_segment(line: LineConfig) -> LineString:
    """The line as a shapely segment."""
    return LineString([line.a, line.b])


def zone_shape(zone: ZoneConfig) -> Polygon:
    """The zone as a shapely polygon."""
    return Polygon(zone.polygon)


@dataclass(frozen=True, slots=True)
class StoreGeometry:
    """Everything the simulator needs to know about a store's floor.

    Attributes:
        config: the store's box config (floor plan, lines, zones, time zone, cameras).
        outer: the walkable area's outer boundary; defaults to the floor rectangle.
        obstacles: polygons cut out of the walkable area (shelves, counters, walls).
    """

    config: BoxConfig
    outer: tuple[Point, ...] = ()
    obstacles: tuple[tuple[Point, ...], ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def width_m(self) -> float:
        """Floor plan width (x runs from 0 to ``width_m``)."""
        return self.config.floor_plan.width_m

    @property
    def depth_m(self) -> float:
        """Floor plan depth (y runs from 0 to ``depth_m``, origin top-left)."""
        return self.config.floor_plan.depth_m

    @property
    def lines(self) -> Sequence[LineConfig]:
        """The counting lines."""
        return self.config.lines

    @property
    def zones(self) -> Sequence[ZoneConfig]:
        """The floor zones."""
        return self.config.zones

    @property
    def timezone(self) -> str:
        """The store's IANA time zone (for scenario start times without an offset)."""
        return self.config.store.timezone

    @property
    def cameras(self) -> tuple[str, ...]:
        """The store's camera ids (a simulated camera must be one of them)."""
        return tuple(c.id for c in self.config.cameras)

    def floor_rect(self) -> Polygon:
        """The floor plan rectangle."""
        return shapely.box(0.0, 0.0, self.width_m, self.depth_m)

    def walkable(self) -> Polygon:
        """The walkable area: ``outer`` (or the floor rectangle) minus the obstacles.

        Raises:
            GeometryError: the area is empty or falls apart into several pieces.
        """
        cached = self._cache.get("walkable")
        if isinstance(cached, Polygon):
            return cached
        area: Any = Polygon(self.outer) if self.outer else self.floor_rect()
        if not area.is_valid:
            raise GeometryError(
                f"walkable outer polygon is invalid: {shapely.is_valid_reason(area)}"
            )
        for i, obstacle in enumerate(self.obstacles):
            poly = Polygon(obstacle)
            if not poly.is_valid:
                raise GeometryError(f"obstacle {i} is invalid: {shapely.is_valid_reason(poly)}")
            area = area.difference(poly)
        if not isinstance(area, Polygon) or area.is_empty:
            parts = len(getattr(area, "geoms", ()))
            raise GeometryError(
                f"the walkable area must be one connected polygon, the obstacles split it into "
                f"{parts} pieces"
            )
        self._cache["walkable"] = area
        return area

    def with_walkable(
        self, outer: Sequence[Point], obstacles: Sequence[Sequence[Point]] = ()
    ) -> StoreGeometry:
        """A copy with another walkable area."""
        return replace(
            self,
            outer=tuple(_pt(p) for p in outer),
            obstacles=tuple(tuple(_pt(p) for p in o) for o in obstacles),
            _cache={},
        )

    def zone(self, zone_id: str) -> ZoneConfig:
        """The zone with this id.

        Raises:
            KeyError: no such zone.
        """
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(f"no zone {zone_id!r} (zones: {', '.join(z.id for z in self.zones)})")

    def line(self, line_id: str) -> LineConfig:
        """The counting line with this id.

        Raises:
            KeyError: no such line.
        """
        for ln in self.lines:
            if ln.id == line_id:
                return ln
        raise KeyError(f"no line {line_id!r} (lines: {', '.join(ln.id for ln in self.lines)})")


def _pt(p: Sequence[float]) -> Point:
    if len(p) != 2:
        raise GeometryError(f"a point needs two coordinates, got {list(p)!r}")
    x, y = float(p[0]), float(p[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise GeometryError(f"point {list(p)!r} is not finite")
    return (x, y)


def standing_points(
    region: Any,
    walkable: Polygon,
    *,
    spacing: float = 0.8,
    clearance: float = 0.4,
    near_edge_m: float | None = None,
    corner_gap_m: float = 0.0,
) -> list[Point]:
    """Points inside ``region`` where a person can stand: on a grid, away from walls.

    Args:
        region: a shapely polygon (a zone, a spawn area).
        walkable: the walkable area.
        spacing: grid spacing in metres.
        clearance: minimum distance from any wall or obstacle.
        near_edge_m: keep only points at most this much further than ``clearance``
            from a wall or obstacle (people face the shelves), when there are any.
        corner_gap_m: keep points at least this far from every corner of the
            walkable area, so that nobody standing there blocks the way round it
            (when that leaves any).

    Returns:
        Grid points (row by row), or the region's representative point when the
        grid misses it; empty when no part of the region is ``clearance`` from a wall.
    """
    usable = shapely.intersection(region, walkable.buffer(-clearance))
    if usable.is_empty or usable.area <= 0:
        return []
    minx, miny, maxx, maxy = usable.bounds
    xs = np.arange(minx + spacing / 2, maxx, spacing)
    ys = np.arange(miny + spacing / 2, maxy, spacing)
    mx, my = np.meshgrid(xs, ys)
    gx, gy = mx.ravel(), my.ravel()
    keep = shapely.contains_xy(usable, gx, gy)
    gx, gy = gx[keep], gy[keep]
    if near_edge_m is not None and len(gx):
        dist = shapely.distance(shapely.points(gx, gy), walkable.boundary)
        near = dist <= clearance + near_edge_m
        if near.any():
            gx, gy = gx[near], gy[near]
    if corner_gap_m > 0 and len(gx):
        rings = [walkable.exterior, *walkable.interiors]
        corners = shapely.multipoints(np.concatenate([np.asarray(r.coords) for r in rings]))
        clear = shapely.distance(shapely.points(gx, gy), corners) >= corner_gap_m
        if clear.any():
            gx, gy = gx[clear], gy[clear]
    points = [(float(x), float(y)) for x, y in zip(gx, gy, strict=True)]
    if not points:
        rp = usable.representative_point()
        points = [(float(rp.x), float(rp.y))]
    return points
