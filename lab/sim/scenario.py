"""The scenario file: who comes into a simulated store, what they do, and what the cameras see.

A scenario is YAML validated by pydantic models that all forbid unknown keys; a
typo is an error naming the key and its line. The store itself (floor plan,
lines, zones) comes from a footfall store config referenced by path, so the
simulated store and the analytics share one geometry. See
``examples/sim/*/scenario.yaml`` for complete files.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from appliance.config import ConfigError, load_config
from appliance.config.yaml_loader import YamlIssue, YamlModelError, parse_model, read_yaml_text
from lab.sim.distributions import Distribution, Lognormal, Normal
from lab.sim.geometry import StoreGeometry

log = logging.getLogger(__name__)

Point = tuple[float, float]
_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Walkable(_Model):
    """Where people can walk: an outer polygon minus obstacles (shelves, counters, walls)."""

    outer: list[Point] = Field(min_length=3)
    obstacles: list[list[Point]] = Field(default_factory=list)


class Entrance(_Model):
    """A door: people appear in ``spawn`` (outside), cross ``line`` in, and leave the same way.

    Attributes:
        id: the entrance's name.
        spawn: polygon outside the door where arriving people appear and where
            leaving people disappear; at least 0.5 m from the counting line.
        line: the id of the counting line across this door (from the store config).
        weight: relative share of arrivals and departures through this door.
    """

    id: str = Field(pattern=_ID)
    spawn: list[Point] = Field(min_length=3)
    line: str
    weight: float = Field(1.0, gt=0)


class Customers(_Model):
    """How customers behave apart from displays and tills."""

    speed_mps: Distribution = Normal(dist="normal", mean=1.2, sd=0.15, low=0.7, high=1.7)
    purchase_probability: float = Field(0.6, ge=0, le=1)
    radius_m: float = Field(0.2, gt=0.1, le=0.35)


class Display(_Model):
    """A display zone and how it draws customers.

    Attributes:
        zone: id of a ``display`` zone in the store config.
        attraction: probability that a customer visits it.
        dwell_s: how long a visitor stays.
    """

    zone: str
    attraction: float = Field(ge=0, le=1)
    dwell_s: Distribution = Lognormal(dist="lognormal", median=30, sigma=0.6)


class Till(_Model):
    """A till: a queue zone, a service point zone, a service time and parallel servers.

    Attributes:
        queue_zone: id of a ``queue`` zone; customers line up along its long axis.
        service_point_zone: id of a ``service_point`` zone; customers are served there.
        service_s: service time per customer.
        servers: customers served at once (one service position each).
        queue_slots: optional explicit standing points of the line, head first;
            by default they are laid out every 0.7 m along the queue zone.
    """

    queue_zone: str
    service_point_zone: str
    service_s: Distribution = Lognormal(dist="lognormal", median=45, sigma=0.4)
    servers: int = Field(1, ge=1, le=8)
    queue_slots: list[Point] | None = None


class StaffWalks(_Model):
    """Occasional walks of staff out of their zone (restocking, helping)."""

    every_s: float = Field(gt=0)
    to_zones: list[str] = Field(default_factory=list)
    dwell_s: Distribution = Lognormal(dist="lognormal", median=30, sigma=0.5)


class Staff(_Model):
    """Staff: present from the start, pottering about in their ``staff_only`` zone.

    Attributes:
        count: how many.
        zone: id of a ``staff_only`` zone they stay in.
        pause_s: time standing still between two small moves.
        walks: occasional walks to other zones (default: displays), or none.
    """

    count: int = Field(ge=0, le=50)
    zone: str
    pause_s: Distribution = Lognormal(dist="lognormal", median=20, sigma=0.5)
    walks: StaffWalks | None = None


class RatePiece(_Model):
    """From ``from_s`` (seconds since the start) on, ``per_hour`` arrivals per hour."""

    from_s: float = Field(ge=0)
    per_hour: float = Field(ge=0)


class Arrivals(_Model):
    """When customers arrive: a Poisson process, constant or piecewise constant.

    Attributes:
        duration_s: arrivals stop after this many seconds.
        per_minute: a constant rate; or
        profile: piecewise-constant rates (``from_s``, ``per_hour``), the first from 0.
        drain: after ``duration_s``, keep simulating until every customer has left.
        max_drain_s: longest drain (stuck people are logged, the run still ends).
        allow_overflow: accept arrival rates above the tills' capacity.
    """

    duration_s: float = Field(gt=0, le=24 * 3600)
    per_minute: float | None = Field(None, ge=0)
    profile: list[RatePiece] | None = None
    drain: bool = True
    max_drain_s: float = Field(1800, ge=0)
    allow_overflow: bool = False

    @model_validator(mode="after")
    def _one_rate(self) -> Arrivals:
        if (self.per_minute is None) == (self.profile is None):
            raise ValueError("give exactly one of per_minute or profile")
        if self.profile is not None:
            starts = [p.from_s for p in self.profile]
            if not starts or starts[0] != 0:
                raise ValueError("profile must start with from_s: 0")
            if any(b <= a for a, b in itertools.pairwise(starts)):
                raise ValueError("profile from_s values must increase")
        return self

    def pieces(self) -> list[tuple[float, float, float]]:
        """``(start_s, end_s, rate_per_s)`` pieces covering ``[0, duration_s)``."""
        if self.per_minute is not None:
            return [(0.0, self.duration_s, self.per_minute / 60.0)]
        assert self.profile is not None
        starts = [p.from_s for p in self.profile] + [self.duration_s]
        return [
            (p.from_s, min(starts[i + 1], self.duration_s), p.per_hour / 3600.0)
            for i, p in enumerate(self.profile)
            if p.from_s < self.duration_s
        ]

    def peak_per_s(self) -> float:
        """The highest arrival rate, per second."""
        return max((r for _, _, r in self.pieces()), default=0.0)


class CameraView(_Model):
    """A camera as the simulator sees it: an id and its field of view on the floor."""

    id: str = Field(pattern=_ID)
    fov: list[Point] = Field(min_length=3)


class CameraOutage(_Model):
    """A camera that is down from ``from_s`` to ``to_s`` (seconds since the start)."""

    camera: str
    from_s: float = Field(ge=0)
    to_s: float

    @model_validator(mode="after")
    def _ordered(self) -> CameraOutage:
        if self.to_s <= self.from_s:
            raise ValueError("to_s must be after from_s")
        return self


class Noise(_Model):
    """What a real vision pipeline gets wrong, per camera.

    Attributes:
        jitter_sigma_m: gaussian position noise per axis, metres.
        miss_probability: share of a track's points that are missed.
        miss_burst_s: mean length of a run of missed points; 0 = independent per point.
        id_switch_mean_s: mean time between id switches on one track (exponential);
            none = never.
        track_keep_s: a person back in view within this keeps the track id;
            a longer gap starts a new track.
        sample_rate_hz: points per second per person (and of the ground truth).
        timestamp_jitter: timestamps are exact.
    """

    jitter_sigma_m: float = Field(0.0, ge=0, le=5)
    miss_probability: float = Field(0.0, ge=0, lt=1)
    miss_burst_s: float = Field(0.0, ge=0)
    id_switch_mean_s: float | None = Field(None, gt=0)
    track_keep_s: float = Field(1.0, ge=0)
    sample_rate_hz: float = Field(10.0, gt=0, le=100)
    timestamp_jitter: Literal["none"] = "none"


class Abandon(_Model):
    """Queue abandonment: with ``probability`` a customer gives up after ``patience_s``."""

    probability: float = Field(0.0, ge=0, le=1)
    patience_s: Distribution = Lognormal(dist="lognormal", median=180, sigma=0.5)


class Scenario(_Model):
    """One simulated store run.

    Attributes:
        name: a label for logs and the truth file.
        store_config: path of the footfall store YAML, relative to the scenario file.
        start: local start time (``YYYY-MM-DDTHH:MM:SS``, in the store's time zone)
            or an ISO time with an offset / ``Z``.
        seed: default random seed.
        dt_s: the pedestrian model's time step.
        walkable: the walkable area; by default the floor rectangle.
        store_area: what counts as inside the store for occupancy; default the floor plan.
        entrances, customers, displays, tills, staff, arrivals: behaviour.
        cameras, camera_outages, noise: what the cameras report.
        abandon: queue abandonment.
    """

    name: str = "scenario"
    store_config: str
    start: str = "2024-06-03T09:00:00"
    seed: int = 0
    dt_s: float = Field(0.01, gt=0, le=0.1)
    walkable: Walkable | None = None
    store_area: list[Point] | None = None
    entrances: list[Entrance] = Field(min_length=1)
    customers: Customers = Field(default_factory=Customers)
    displays: list[Display] = Field(default_factory=list)
    tills: list[Till] = Field(default_factory=list)
    staff: Staff | None = None
    arrivals: Arrivals
    cameras: list[CameraView] = Field(default_factory=list)
    camera_outages: list[CameraOutage] = Field(default_factory=list)
    noise: Noise = Field(default_factory=Noise)
    abandon: Abandon = Field(default_factory=Abandon)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        for kind, ids in (
            ("entrances", [e.id for e in self.entrances]),
            ("cameras", [c.id for c in self.cameras]),
            ("displays", [d.zone for d in self.displays]),
            ("tills", [t.queue_zone for t in self.tills]),
        ):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{kind}: duplicate id {dup[0]!r}")
        cams = {c.id for c in self.cameras}
        for i, outage in enumerate(self.camera_outages):
            if outage.camera not in cams:
                raise ValueError(f"camera_outages[{i}].camera: no camera {outage.camera!r}")
        steps = 1.0 / (self.noise.sample_rate_hz * self.dt_s)
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"dt_s ({self.dt_s}) must divide the sample period "
                f"(1/{self.noise.sample_rate_hz} Hz) into whole steps"
            )
        load = self.till_load()
        if load >= 1.0 and not self.arrivals.allow_overflow:
            raise ValueError(
                f"peak arrivals {self.arrivals.peak_per_s() * 3600:.0f}/h x purchase "
                f"{self.customers.purchase_probability} need {load:.0%} of the tills' capacity; "
                "lower the rate, add servers, or set arrivals.allow_overflow: true"
            )
        return self

    def till_load(self) -> float:
        """Peak offered load on the tills (1.0 = exactly their capacity; 0 without tills)."""
        demand = self.arrivals.peak_per_s() * self.customers.purchase_probability
        if demand == 0 or not self.tills:
            return 0.0
        capacity = sum(t.servers / max(t.service_s.mean(), 1e-9) for t in self.tills)
        return demand / capacity if capacity > 0 else float("inf")


ScenarioIssue = YamlIssue


class ScenarioError(YamlModelError):
    """A scenario file is unreadable or invalid; ``issues`` lists every problem."""


_DIST_TAGS = frozenset({"fixed", "lognormal", "exponential", "uniform", "normal"})


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(p for p in loc if p not in _DIST_TAGS)


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Parse and validate scenario YAML text.

    Args:
        text: the YAML.
        file: the name used in error messages.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: YAML syntax or validation errors, each with its line and key path.
    """
    return parse_model(Scenario, text, file, ScenarioError, _clean_loc)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file.

    Args:
        path: the scenario YAML.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: the file is missing, unreadable or invalid.
    """
    return parse_scenario(read_yaml_text(path, ScenarioError), str(path))


def load_store_geometry(scenario: Scenario, scenario_path: str | Path) -> StoreGeometry:
    """The store geometry of a scenario: its store config's lines and zones, its walkable area.

    Args:
        scenario: the scenario.
        scenario_path: the scenario file (``store_config`` is relative to its folder).

    Returns:
        The geometry, with the scenario's walkable area when it has one.

    Raises:
        ScenarioError: the store config is missing or invalid (its own issues follow).
    """
    cfg = (Path(scenario_path).parent / scenario.store_config).resolve()
    try:
        config = load_config(cfg)
    except ConfigError as exc:
        where = ScenarioIssue(
            str(scenario_path), 1, "store_config", f"{cfg} is not a valid store config"
        )
        raise ScenarioError([where, *exc.issues]) from exc
    geometry = StoreGeometry(config)
    if scenario.walkable is not None:
        geometry = geometry.with_walkable(scenario.walkable.outer, scenario.walkable.obstacles)
    return geometry
