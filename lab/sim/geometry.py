"""The store as plain geometry: floor size, walkable area, counting lines and zones.

The simulator must not import ``appliance``, so it reads the few keys it needs
(``floor_plan``, ``lines``, ``zones``, ``store.timezone``) straight from a store
config's parsed YAML with :func:`geometry_from_config_dict`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

log = logging.getLogger(__name__)

Point = tuple[float, float]
ZoneKind = Literal["entrance", "display", "queue", "service_point", "checkout", "staff_only"]
ZONE_KINDS: tuple[str, ...] = (
    "entrance",
    "display",
    "queue",
    "service_point",
    "checkout",
    "staff_only",
)


class GeometryError(ValueError):
    """The store geometry is missing a key, malformed, or unusable for a simulation."""


@dataclass(frozen=True, slots=True)
class Line:
    """A counting line from ``a`` to ``b``.

    ``in_side="left"`` means the inside of the store is where
    ``cross(b - a, p - a) > 0``.
    """

    id: str
    a: Point
    b: Point
    in_side: Literal["left", "right"]

    def side(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """``cross(b - a, p - a)`` for each point (positive: left of a→b)."""
        (ax, ay), (bx, by) = self.a, self.b
        return np.asarray((bx - ax) * (ys - ay) - (by - ay) * (xs - ax), dtype=np.float64)

    def inside(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Whether each point is strictly on the inside of the line (on it counts as outside)."""
        s = self.side(xs, ys)
        return np.asarray(s > 0 if self.in_side == "left" else s < 0)

    def segment(self) -> LineString:
        """The line as a shapely segment."""
        return LineString([self.a, self.b])


@dataclass(frozen=True, slots=True)
class Zone:
    """A floor zone: an id, a kind and a polygon in metres."""

    id: str
    kind: ZoneKind
    polygon: tuple[Point, ...]

    def shape(self) -> Polygon:
        """The zone as a shapely polygon."""
        return Polygon(self.polygon)


@dataclass(frozen=True, slots=True)
class StoreGeometry:
    """Everything the simulator needs to know about a store's floor.

    Attributes:
        width_m: floor plan width (x runs from 0 to ``width_m``).
        depth_m: floor plan depth (y runs from 0 to ``depth_m``, origin top-left).
        lines: counting lines.
        zones: floor zones.
        outer: the walkable area's outer boundary; defaults to the floor rectangle.
        obstacles: polygons cut out of the walkable area (shelves, counters, walls).
        timezone: the store's IANA time zone (for scenario start times without an offset).
        cameras: the store config's camera ids (a simulated camera must be one of them).
    """

    width_m: float
    depth_m: float
    lines: tuple[Line, ...] = ()
    zones: tuple[Zone, ...] = ()
    outer: tuple[Point, ...] = ()
    obstacles: tuple[tuple[Point, ...], ...] = ()
    timezone: str = "UTC"
    cameras: tuple[str, ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

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

    def zone(self, zone_id: str) -> Zone:
        """The zone with this id.

        Raises:
            KeyError: no such zone.
        """
        for z in self.zones:
            if z.id == zone_id:
                return z
        raise KeyError(f"no zone {zone_id!r} (zones: {', '.join(z.id for z in self.zones)})")

    def line(self, line_id: str) -> Line:
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


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise GeometryError(f"{where}: required key {key!r} is missing")
    return d[key]


def geometry_from_config_dict(d: Mapping[str, Any]) -> StoreGeometry:
    """Read a store config's floor plan, lines and zones from its parsed YAML.

    Only ``floor_plan``, ``lines``, ``zones``, ``store.timezone`` and the camera
    ids are read; the rest of the config (detector, calibration, ...) is ignored. The walkable area
    defaults to the floor rectangle with no obstacles (a scenario supplies its own).

    Args:
        d: the parsed YAML of a footfall store config (a plain mapping).

    Returns:
        The store geometry.

    Raises:
        GeometryError: a needed key is missing or malformed.
    """
    plan = _get(d, "floor_plan", "store config")
    try:
        width, depth = (
            float(_get(plan, "width_m", "floor_plan")),
            float(_get(plan, "depth_m", "floor_plan")),
        )
    except (TypeError, ValueError) as exc:
        raise GeometryError(f"floor_plan: width_m/depth_m must be numbers: {exc}") from exc
    if not (width > 0 and depth > 0):
        raise GeometryError(f"floor_plan: width_m/depth_m must be positive, got {width}x{depth}")
    lines: list[Line] = []
    for i, raw in enumerate(d.get("lines") or []):
        where = f"lines[{i}]"
        side = _get(raw, "in_side", where)
        if side not in ("left", "right"):
            raise GeometryError(f"{where}.in_side: must be 'left' or 'right', got {side!r}")
        try:
            a, b = _pt(_get(raw, "a", where)), _pt(_get(raw, "b", where))
        except (TypeError, ValueError) as exc:
            raise GeometryError(f"{where}: {exc}") from exc
        if a == b:
            raise GeometryError(f"{where}: a and b are the same point")
        lines.append(Line(str(_get(raw, "id", where)), a, b, side))
    zones: list[Zone] = []
    for i, raw in enumerate(d.get("zones") or []):
        where = f"zones[{i}]"
        kind = _get(raw, "kind", where)
        if kind not in ZONE_KINDS:
            raise GeometryError(f"{where}.kind: unknown zone kind {kind!r}")
        try:
            polygon = tuple(_pt(p) for p in _get(raw, "polygon", where))
        except (TypeError, ValueError) as exc:
            raise GeometryError(f"{where}.polygon: {exc}") from exc
        if len(polygon) < 3 or Polygon(polygon).area <= 1e-9:
            raise GeometryError(f"{where}.polygon: needs at least three points and an area")
        zones.append(Zone(str(_get(raw, "id", where)), kind, polygon))
    store = d.get("store") or {}
    timezone = str(store.get("timezone", "UTC")) if isinstance(store, Mapping) else "UTC"
    cameras = tuple(
        str(c["id"]) for c in (d.get("cameras") or []) if isinstance(c, Mapping) and "id" in c
    )
    log.debug("store geometry %sx%s m, %d lines, %d zones", width, depth, len(lines), len(zones))
    return StoreGeometry(
        width, depth, tuple(lines), tuple(zones), timezone=timezone, cameras=cameras
    )


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
