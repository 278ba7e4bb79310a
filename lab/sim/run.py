"""Run a scenario: arrivals, the pedestrian model, the truth and the camera views.

Example:
    >>> from lab.sim import load_scenario, load_store_geometry, simulate
    >>> sc = load_scenario("examples/sim/corner_shop/scenario.yaml")
    >>> geo = load_store_geometry(sc, "examples/sim/corner_shop/scenario.yaml")
    >>> result = simulate(sc, geo, seed=1)  # doctest: +SKIP
    >>> result.write_csv("observations.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from lab.sim.engine import Engine, Frames
from lab.sim.geometry import StoreGeometry
from lab.sim.layout import Layout, build_layout
from lab.sim.observe import observe
from lab.sim.result import SimResult, SimStats
from lab.sim.scenario import Arrivals, Scenario, load_scenario, load_store_geometry
from lab.sim.truth import Samples, line_crossings, occupancy, zone_visits

log = logging.getLogger(__name__)


def start_ms(scenario: Scenario, timezone: str) -> int:
    """UTC milliseconds of the scenario's start.

    Args:
        scenario: the scenario (``start`` without an offset is local store time).
        timezone: the store's IANA time zone.

    Returns:
        Milliseconds since the Unix epoch.

    Raises:
        ValueError: ``start`` is not an ISO time, or the time zone is unknown.
    """
    try:
        when = datetime.fromisoformat(scenario.start)
    except ValueError as exc:
        raise ValueError(f"start: {scenario.start!r} is not an ISO date-time") from exc
    if when.tzinfo is None:
        try:
            when = when.replace(tzinfo=ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"store timezone {timezone!r} is not an IANA time zone") from exc
    return round(when.astimezone(UTC).timestamp() * 1000)


def draw_arrivals(
    arrivals: Arrivals, weights: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrival times (seconds, sorted) and the entrance of each.

    Args:
        arrivals: the arrival profile.
        weights: relative weight of each entrance.
        rng: the arrivals random stream.

    Returns:
        ``(times_s, entrance_index)``.
    """
    times: list[np.ndarray] = []
    for a, b, rate in arrivals.pieces():
        n = int(rng.poisson(rate * (b - a)))
        times.append(np.sort(rng.uniform(a, b, n)))
    t = np.concatenate(times) if times else np.zeros(0)
    p = weights / weights.sum()
    return t, rng.choice(len(p), size=len(t), p=p)


def _samples(frames: Frames, start: int, rate: float, staff: set[int]) -> Samples:
    order = np.lexsort((frames.tick, frames.person))
    tick = frames.tick[order]
    person = frames.person[order]
    t_ms = start + np.rint(tick * (1000.0 / rate)).astype(np.int64)
    is_staff = np.isin(person, np.fromiter(staff, dtype=np.int64, count=len(staff)))
    return Samples(person, tick, t_ms, frames.x[order], frames.y[order], is_staff)


def simulate(scenario: Scenario, geometry: StoreGeometry, seed: int | None = None) -> SimResult:
    """Simulate a store and compute its exact truth and per-camera observations.

    Args:
        scenario: the scenario.
        geometry: the store; the scenario's ``walkable`` area, when given, replaces its own.
        seed: random seed (default: the scenario's ``seed``); the same seed gives
            the same result.

    Returns:
        The truth tables, the observations and run statistics.

    Raises:
        LayoutError: the scenario does not fit the store.
        GeometryError: the walkable area is unusable.
        ValueError: a bad start time.
    """
    seed = scenario.seed if seed is None else seed
    if scenario.walkable is not None:
        geometry = geometry.with_walkable(scenario.walkable.outer, scenario.walkable.obstacles)
    layout: Layout = build_layout(scenario, geometry)
    t0 = start_ms(scenario, geometry.timezone)
    rate = scenario.noise.sample_rate_hz
    arrival_rng, behaviour_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    weights = np.array([e.weight for e in scenario.entrances], dtype=float)
    times, doors = draw_arrivals(scenario.arrivals, weights, arrival_rng)
    log.info("simulating %s (seed %d): %d arrivals", scenario.name, seed, len(times))
    wall = time.perf_counter()
    frames = Engine(scenario, layout, behaviour_rng).run(times, doors)
    staff_ids = {r.person_id for r in frames.persons if r.is_staff}
    s = _samples(frames, t0, rate, staff_ids)
    period_ms = 1000.0 / rate
    gone = {
        r.person_id: (None if r.gone_s is None else t0 + round(r.gone_s * 1000))
        for r in frames.persons
    }
    persons = pd.DataFrame(
        {
            "person_id": np.array([r.person_id for r in frames.persons], dtype=np.int64),
            "is_staff": np.array([r.is_staff for r in frames.persons], dtype=bool),
            "entrance_id": pd.array([r.entrance for r in frames.persons], dtype=object),
            "spawn_ms": np.array(
                [t0 + round(r.spawn_s * 1000) for r in frames.persons], dtype=np.int64
            ),
            "gone_ms": pd.array([gone[r.person_id] for r in frames.persons], dtype="Int64"),
        }
    )
    trajectories = pd.DataFrame(
        {"person_id": s.person, "t_ms": s.t_ms, "x_m": s.x, "y_m": s.y, "is_staff": s.staff}
    )
    queue_events = pd.DataFrame(
        {
            "person_id": np.array([q.person_id for q in frames.queues], dtype=np.int64),
            "zone_id": pd.array(
                [layout.tills[q.till].queue_zone.id for q in frames.queues], dtype=object
            ),
            "service_point_zone_id": pd.array(
                [layout.tills[q.till].service_zone.id for q in frames.queues], dtype=object
            ),
            "join_ms": np.array(
                [t0 + round(q.join_s * 1000) for q in frames.queues], dtype=np.int64
            ),
            "served_ms": pd.array(
                [
                    None if q.served_s is None else t0 + round(q.served_s * 1000)
                    for q in frames.queues
                ],
                dtype="Int64",
            ),
            "abandoned": np.array([q.abandoned for q in frames.queues], dtype=bool),
            "left_ms": pd.array(
                [None if q.left_s is None else t0 + round(q.left_s * 1000) for q in frames.queues],
                dtype="Int64",
            ),
        }
    )
    end = t0 + round((frames.n_ticks - 1) * period_ms)
    outage_rows = [
        (o.camera, t0 + round(o.from_s * 1000), min(end, t0 + round(o.to_s * 1000)))
        for o in scenario.camera_outages
        if t0 + round(o.from_s * 1000) <= end
    ]
    outages = pd.DataFrame(outage_rows, columns=["camera_id", "from_ms", "to_ms"]).astype(
        {"from_ms": np.int64, "to_ms": np.int64}
    )
    span = max(end - t0, 1)
    uptime: dict[str, float] = {}
    for cam in scenario.cameras:
        down = [(a, b) for c, a, b in outage_rows if c == cam.id]
        uptime[cam.id] = 1.0 - _covered(down) / span
    obs = observe(s, scenario.cameras, scenario.camera_outages, scenario.noise, t0, noise_rng)
    result = SimResult(
        scenario=scenario.name,
        seed=seed,
        start_ms=t0,
        end_ms=end,
        sample_rate_hz=rate,
        persons=persons,
        trajectories=trajectories,
        line_crossings=line_crossings(s, geometry.lines),
        zone_visits=zone_visits(s, geometry.zones, gone, period_ms),
        queue_events=queue_events,
        occupancy=occupancy(s, geometry.zones, layout.store_area, rate, frames.n_ticks, t0),
        observations=obs.points,
        track_owners=obs.owners,
        camera_outages=outages,
        camera_uptime=uptime,
        stats=SimStats(
            wall_s=time.perf_counter() - wall,
            model_steps=frames.steps,
            simulated_s=(frames.n_ticks - 1) / rate,
            customers=len(frames.persons) - len(staff_ids),
            staff=len(staff_ids),
            detours=frames.detours,
        ),
    )
    log.info(
        "%s: %.0f simulated s in %.1f s wall, %d customers, %d observations",
        scenario.name,
        result.stats.simulated_s,
        result.stats.wall_s,
        result.stats.customers,
        len(result.observations),
    )
    return result


def _covered(intervals: list[tuple[int, int]]) -> int:
    total, reach = 0, None
    for a, b in sorted(intervals):
        if reach is None or a > reach:
            total += b - a
            reach = b
        elif b > reach:
            total += b - reach
            reach = b
    return total


def simulate_file(path: str | Path, seed: int | None = None) -> SimResult:
    """Load a scenario file and its store config, and simulate it.

    Args:
        path: the scenario YAML.
        seed: random seed (default: the scenario's).

    Returns:
        The result.

    Raises:
        ScenarioError: the scenario or its store config is invalid.
        LayoutError: the scenario does not fit the store.
    """
    scenario = load_scenario(path)
    return simulate(scenario, load_store_geometry(scenario, path), seed)
