"""Where people stand in a simulated store: spawn points, display spots, queue slots, tills.

:func:`build_layout` checks a scenario against the store geometry (every zone
and line it names exists and has the right kind, every area is walkable) and
turns zones into concrete standing points for the pedestrian model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from appliance.config import LineConfig, ZoneConfig
from lab.sim.geometry import (
    Point,
    StoreGeometry,
    inside_of,
    line_segment,
    standing_points,
    zone_shape,
)
from lab.sim.scenario import Scenario, Till

log = logging.getLogger(__name__)

SLOT_SPACING_M = 0.7
"""Distance between two people standing in a queue."""
CORNER_GAP_M = 0.8
"""Display and browsing spots keep this far from corners, so that nobody blocks the way round."""
MAX_SPOTS = 12
"""At most this many standing spots per display / walk target set (each costs model time)."""
MIN_SPAWN_TO_LINE_M = 0.5
"""How far a spawn area must be from its counting line, so that leavers are seen crossing it."""


class LayoutError(ValueError):
    """The scenario does not fit the store: an unknown zone, a wall in the way, ..."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True, slots=True)
class EntranceLayout:
    """A door: where people appear, where they vanish, its line and a point just inside."""

    id: str
    weight: float
    line: LineConfig
    spawn_points: tuple[Point, ...]
    exit_area: Polygon
    inside_point: Point


@dataclass(frozen=True, slots=True)
class TillLayout:
    """A till: queue slots (head first), service positions and the queue zone."""

    queue_zone: ZoneConfig
    service_zone: ZoneConfig
    slots: tuple[Point, ...]
    service_points: tuple[Point, ...]
    queue_shape: Polygon


@dataclass(frozen=True, slots=True)
class Layout:
    """All standing points of a simulated store, checked against its walkable area."""

    walkable: Polygon
    store_area: Polygon
    entrances: tuple[EntranceLayout, ...]
    display_points: tuple[tuple[Point, ...], ...]
    tills: tuple[TillLayout, ...]
    staff_points: tuple[Point, ...]
    staff_walk_points: tuple[Point, ...]
    wander_points: tuple[Point, ...]
    detour_points: tuple[Point, ...]


def _zone(geometry: StoreGeometry, zone_id: str, kinds: tuple[str, ...], path: str) -> ZoneConfig:
    try:
        zone = geometry.zone(zone_id)
    except KeyError as exc:
        raise LayoutError(path, str(exc.args[0])) from exc
    if zone.kind not in kinds:
        raise LayoutError(
            path, f"zone {zone_id!r} is a {zone.kind} zone, expected {'/'.join(kinds)}"
        )
    return zone


def _points(
    region: Any, walkable: Polygon, path: str, limit: int | None = None, **kw: Any
) -> tuple[Point, ...]:
    points = standing_points(region, walkable, **kw)
    if not points:
        raise LayoutError(path, "no walkable spot at least 0.4 m from walls and obstacles in it")
    if limit is not None and len(points) > limit:
        # evenly thinned, so the spots still spread over the whole region
        keep = np.linspace(0, len(points) - 1, limit).round().astype(int)
        points = [points[i] for i in keep]
    return tuple(points)


def _queue_slots(
    till: Till, queue: Polygon, service: Polygon, walkable: Polygon, path: str
) -> tuple[Point, ...]:
    """Slots every 0.7 m along the queue zone's long axis, starting at the service end."""
    if till.queue_slots is not None:
        for i, p in enumerate(till.queue_slots):
            if not walkable.buffer(-0.2).contains(shapely.Point(p)):
                raise LayoutError(f"{path}.queue_slots[{i}]", f"{list(p)} is not walkable")
        return tuple(till.queue_slots)
    usable = queue.intersection(walkable.buffer(-0.3))
    if usable.is_empty or usable.area <= 0:
        raise LayoutError(f"{path}.queue_zone", "the queue zone has no walkable room for a line")
    rect = np.asarray(usable.minimum_rotated_rectangle.exterior.coords)[:4]
    edges = [(rect[i], rect[(i + 1) % 4]) for i in range(4)]
    # the axis runs between the midpoints of the two short edges
    short = sorted(edges, key=lambda e: float(np.hypot(*(e[1] - e[0]))))[:2]
    ends = [(e[0] + e[1]) / 2 for e in short]
    target = np.asarray(service.centroid.coords[0])
    ends.sort(key=lambda p: float(np.hypot(*(p - target))))
    head, tail = ends
    axis = LineString([tuple(head), tuple(tail)])
    slots: list[Point] = []
    d = min(0.3, axis.length / 2)
    while d <= axis.length + 1e-9:
        p = axis.interpolate(d)
        if usable.contains(p):
            slots.append((float(p.x), float(p.y)))
        d += SLOT_SPACING_M
    if not slots:
        rp = usable.representative_point()
        slots = [(float(rp.x), float(rp.y))]
    return tuple(slots)


def _service_points(
    servers: int, service: Polygon, walkable: Polygon, path: str
) -> tuple[Point, ...]:
    candidates = standing_points(service, walkable, spacing=0.4, clearance=0.3)
    if not candidates:
        raise LayoutError(path, "the service point zone has no walkable spot 0.3 m from walls")
    if len(candidates) < servers:
        raise LayoutError(path, f"room for {len(candidates)} servers only, not {servers}")
    if servers == 1:
        c = service.centroid
        best = min(candidates, key=lambda p: (p[0] - c.x) ** 2 + (p[1] - c.y) ** 2)
        return (best,)
    # spread the servers: farthest-point picking from the first candidate
    picked = [candidates[0]]
    while len(picked) < servers:
        picked.append(
            max(
                candidates,
                key=lambda p: min((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 for q in picked),
            )
        )
    return tuple(picked)


def build_layout(scenario: Scenario, geometry: StoreGeometry) -> Layout:
    """Check a scenario against its store and place every standing point.

    Args:
        scenario: the scenario.
        geometry: the store (its walkable area is used as is).

    Returns:
        The layout.

    Raises:
        LayoutError: an unknown or wrong-kind zone or line, a camera the store
            config lacks, a spot that is not walkable, a spawn area on the wrong
            side of or too near its line.
    """
    walkable = geometry.walkable()
    for i, cam in enumerate(scenario.cameras):
        if geometry.cameras and cam.id not in geometry.cameras:
            raise LayoutError(
                f"cameras[{i}].id",
                f"no camera {cam.id!r} in the store config "
                f"(cameras: {', '.join(geometry.cameras)})",
            )
    store_area = Polygon(scenario.store_area) if scenario.store_area else geometry.floor_rect()
    entrances: list[EntranceLayout] = []
    for i, ent in enumerate(scenario.entrances):
        path = f"entrances[{i}]"
        try:
            line = geometry.line(ent.line)
        except KeyError as exc:
            raise LayoutError(f"{path}.line", str(exc.args[0])) from exc
        spawn = Polygon(ent.spawn)
        exit_area = spawn.intersection(walkable)
        if not isinstance(exit_area, Polygon) or exit_area.area <= 0:
            raise LayoutError(
                f"{path}.spawn", "the spawn area must overlap the walkable area in one piece"
            )
        gap = exit_area.distance(line_segment(line))
        if gap < MIN_SPAWN_TO_LINE_M:
            raise LayoutError(
                f"{path}.spawn",
                f"only {gap:.2f} m from line {line.id!r}; keep it {MIN_SPAWN_TO_LINE_M} m away "
                "so leaving people are seen crossing the line",
            )
        c = exit_area.centroid
        if bool(inside_of(line, np.array([c.x]), np.array([c.y]))[0]):
            raise LayoutError(
                f"{path}.spawn", f"is on the inside of line {line.id!r}; it must be outside"
            )
        spawn_points = _points(exit_area, walkable, f"{path}.spawn", spacing=0.6, clearance=0.3)
        (ax, ay), (bx, by) = line.a, line.b
        length = float(np.hypot(bx - ax, by - ay))
        nx, ny = -(by - ay) / length, (bx - ax) / length  # left normal of a→b
        if line.in_side == "right":
            nx, ny = -nx, -ny
        inside = ((ax + bx) / 2 + nx * 1.0, (ay + by) / 2 + ny * 1.0)
        if not walkable.buffer(-0.25).contains(shapely.Point(inside)):
            raise LayoutError(
                f"{path}.line", f"the point 1 m inside line {line.id!r} is not walkable"
            )
        entrances.append(EntranceLayout(ent.id, ent.weight, line, spawn_points, exit_area, inside))
    display_points = []
    for i, disp in enumerate(scenario.displays):
        zone = _zone(geometry, disp.zone, ("display",), f"displays[{i}].zone")
        display_points.append(
            _points(
                zone_shape(zone),
                walkable,
                f"displays[{i}].zone",
                MAX_SPOTS,
                spacing=0.6,
                near_edge_m=0.4,
                corner_gap_m=CORNER_GAP_M,
            )
        )
    tills = []
    for i, till in enumerate(scenario.tills):
        path = f"tills[{i}]"
        queue = _zone(geometry, till.queue_zone, ("queue",), f"{path}.queue_zone")
        service = _zone(
            geometry,
            till.service_point_zone,
            ("service_point", "checkout"),
            f"{path}.service_point_zone",
        )
        slots = _queue_slots(till, zone_shape(queue), zone_shape(service), walkable, path)
        serve = _service_points(
            till.servers, zone_shape(service), walkable, f"{path}.service_point_zone"
        )
        queue_shape = zone_shape(queue)
        shapely.prepare(queue_shape)
        tills.append(TillLayout(queue, service, slots, serve, queue_shape))
    staff_points: tuple[Point, ...] = ()
    walk_points: tuple[Point, ...] = ()
    if scenario.staff is not None and scenario.staff.count > 0:
        zone = _zone(geometry, scenario.staff.zone, ("staff_only",), "staff.zone")
        staff_points = _points(zone_shape(zone), walkable, "staff.zone", spacing=0.6)
        if len(staff_points) < scenario.staff.count:
            raise LayoutError("staff.zone", f"room for {len(staff_points)} staff only")
        walks = scenario.staff.walks
        if walks is not None:
            pts: list[Point] = []
            for j, zid in enumerate(walks.to_zones):
                z = _zone(
                    geometry,
                    zid,
                    ("entrance", "display", "queue", "service_point", "checkout", "staff_only"),
                    f"staff.walks.to_zones[{j}]",
                )
                pts += _points(
                    zone_shape(z),
                    walkable,
                    f"staff.walks.to_zones[{j}]",
                    MAX_SPOTS,
                    spacing=1.2,
                    near_edge_m=0.4,
                    corner_gap_m=CORNER_GAP_M,
                )
            if not walks.to_zones:
                pts = [p for group in display_points for p in group]
            if not pts:
                raise LayoutError(
                    "staff.walks.to_zones", "nowhere to walk to (no zones, no displays)"
                )
            walk_points = tuple(pts)
    blocked = [
        zone_shape(z)
        for z in geometry.zones
        if z.kind in ("staff_only", "queue", "service_point", "checkout")
    ]
    browse = store_area.difference(shapely.union_all(blocked)) if blocked else store_area
    wander = _points(
        browse,
        walkable,
        "store_area",
        2 * MAX_SPOTS,
        spacing=2.0,
        clearance=0.5,
        corner_gap_m=CORNER_GAP_M,
    )
    log.info(
        "layout: %d entrances, %d displays (%d spots), %d tills (%d slots), %d staff spots",
        len(entrances),
        len(display_points),
        sum(len(d) for d in display_points),
        len(tills),
        sum(len(t.slots) for t in tills),
        len(staff_points),
    )
    return Layout(
        walkable,
        store_area,
        tuple(entrances),
        tuple(display_points),
        tuple(tills),
        staff_points,
        walk_points,
        wander,
        _points(walkable, walkable, "walkable", spacing=1.0, clearance=0.45),
    )
