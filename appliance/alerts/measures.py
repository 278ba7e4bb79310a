"""What each rule kind measures, per target, from the live snapshot and the box's state.

Units: people (``queue_length``, ``store_occupancy``, ``zone_occupancy_*``), percent of
``store.capacity`` (``store_occupancy`` with ``of_capacity``), seconds
(``predicted_wait``, ``staffing_gap``, ``sync_lag``), people per m² (``density``),
customers per rostered staff member (``customers_per_staff``), 1 = down / 0 = up
(``camera_down``), GB free (``disk_low``). None means "not known now": the rule
neither raises nor clears on it.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import shapely

from appliance.alerts.roster import STORE, Roster
from appliance.analytics.live import LiveSnapshot
from appliance.config import AlertRule, BoxConfig, ZoneConfig

logger = logging.getLogger(__name__)

#: a staffing gap goes on through staff visits (or an empty zone) shorter than this
GAP_GRACE_MS = 3000
GB = 1e9


@dataclass(frozen=True, slots=True)
class SystemState:
    """Measurements of the box itself (injected, so tests can set them).

    Attributes:
        disk_free_bytes: free space where the database lives.
        sync_lag_s: age of the oldest aggregate not yet accepted by the hub (None
            until the sync exists or knows).
    """

    disk_free_bytes: int | None = None
    sync_lag_s: float | None = None


def measure_system(db_path: Path, sync_lag_s: float | None = None) -> SystemState:
    """Free disk space of the database's folder, and the sync lag given.

    Args:
        db_path: the SQLite file.
        sync_lag_s: from the sync, if it runs.
    """
    try:
        free = shutil.disk_usage(db_path.parent).free
    except OSError as exc:
        logger.warning("disk usage of %s: %s", db_path.parent, exc)
        return SystemState(None, sync_lag_s)
    return SystemState(free, sync_lag_s)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything besides the snapshot that rules read."""

    config: BoxConfig
    system: SystemState
    roster: Roster | None = None


def local_time(config: BoxConfig, now_ms: int) -> datetime:
    """``now_ms`` in the store's time zone."""
    return datetime.fromtimestamp(now_ms / 1000, ZoneInfo(config.store.timezone))


class Measures:
    """Turns a snapshot into one value per rule target; remembers staffing gaps."""

    def __init__(self) -> None:
        self._gap_since: dict[str, int] = {}
        self._covered_since: dict[str, int] = {}

    def values(
        self, rule: AlertRule, snap: LiveSnapshot, inputs: Inputs, now_ms: int
    ) -> dict[str, float | None]:
        """The rule's value per target (``""`` for the whole store or the box).

        Args:
            rule: the rule.
            snap: the live snapshot at ``now_ms``.
            inputs: config, system state, roster.
            now_ms: the moment.
        """
        config, kind = inputs.config, rule.kind
        if kind in ("queue_length", "predicted_wait"):
            by_queue = snap.queue_lengths if kind == "queue_length" else snap.predicted_wait_s
            targets = [rule.target] if rule.target else list(by_queue)
            return {q: _num(by_queue.get(q)) for q in targets}
        if kind == "camera_down":
            targets = [rule.target] if rule.target else [c.id for c in config.cameras]
            return {c: 0.0 if snap.cameras_up.get(c, True) else 1.0 for c in targets}
        if kind == "density":
            if rule.target is None:
                area = config.floor_plan.width_m * config.floor_plan.depth_m
                return {"": snap.store_occupancy / area}
            area = shapely.Polygon(_zone(config, rule.target).polygon).area
            return {rule.target: snap.zone_counts[rule.target] / area}
        if kind == "store_occupancy":
            capacity = config.store.capacity
            if rule.of_capacity and capacity:
                return {"": 100.0 * snap.store_occupancy / capacity}
            return {"": float(snap.store_occupancy)}
        if kind in ("zone_occupancy_above", "zone_occupancy_below"):
            zone = _target(rule)
            return {zone: float(snap.zone_counts[zone])}
        if kind == "staffing_gap":
            zone = _target(rule)
            return {zone: self._gap(zone, snap, now_ms)}
        if kind == "customers_per_staff":
            return self._per_staff(rule, snap, inputs, now_ms)
        if kind == "sync_lag":
            return {"": inputs.system.sync_lag_s}
        # disk_low
        free = inputs.system.disk_free_bytes
        return {"": None if free is None else free / GB}

    def _gap(self, zone: str, snap: LiveSnapshot, now_ms: int) -> float:
        """Seconds the zone has had customers and no staff (0 when covered or empty)."""
        if snap.zone_counts[zone] > 0 and snap.staff_counts[zone] == 0:
            self._covered_since.pop(zone, None)
            return (now_ms - self._gap_since.setdefault(zone, now_ms)) / 1000
        since = self._gap_since.get(zone)
        if since is None:
            return 0.0
        if now_ms - self._covered_since.setdefault(zone, now_ms) < GAP_GRACE_MS:
            return (now_ms - since) / 1000
        del self._gap_since[zone], self._covered_since[zone]
        return 0.0

    @staticmethod
    def _per_staff(
        rule: AlertRule, snap: LiveSnapshot, inputs: Inputs, now_ms: int
    ) -> dict[str, float | None]:
        key = rule.target or ""
        if inputs.roster is None:
            return {key: None}
        staff = inputs.roster.staff(rule.target or STORE, local_time(inputs.config, now_ms))
        customers = snap.zone_counts[rule.target] if rule.target else snap.store_occupancy
        if staff is None:
            return {key: None}
        if staff == 0:
            return {key: math.inf if customers else 0.0}
        return {key: customers / staff}


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


def _target(rule: AlertRule) -> str:
    if rule.target is None:  # the config requires one for these kinds
        raise ValueError(f"rule {rule.id!r} ({rule.kind}) has no target")
    return rule.target


def _zone(config: BoxConfig, zone_id: str) -> ZoneConfig:
    return next(z for z in config.zones if z.id == zone_id)
