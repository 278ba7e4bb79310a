"""The outcome of one simulated run: exact truth, camera observations, and how to save them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

OBSERVATION_COLUMNS = ["camera_id", "track_id", "t_ms", "x_m", "y_m"]
"""The ingest format of ``footfall ingest`` (and the column order of the CSV)."""


@dataclass(frozen=True, slots=True)
class SimStats:
    """How the run went (not part of the truth: timings differ between machines).

    Attributes:
        wall_s: seconds from the first model step to the finished truth and observations.
        model_steps: JuPedSim iterations.
        simulated_s: simulated seconds (arrivals plus the drain).
        customers: customers who came in.
        staff: staff.
        detours: times a blocked person was sent round a nearby spot to get unstuck.
    """

    wall_s: float
    model_steps: int
    simulated_s: float
    customers: int
    staff: int
    detours: int


@dataclass(frozen=True, slots=True)
class SimResult:
    """Everything a simulated run produced.

    All times are UTC milliseconds. Truth tables:

    Attributes:
        scenario: the scenario's name.
        seed: the seed the run used.
        start_ms: UTC milliseconds of simulated time 0.
        end_ms: the last sample's time.
        sample_rate_hz: samples per second per person.
        persons: ``person_id, is_staff, entrance_id, spawn_ms, gone_ms`` (``gone_ms``
            NA for people still inside at the end).
        trajectories: ``person_id, t_ms, x_m, y_m, is_staff`` at the sample rate.
        line_crossings: ``person_id, line_id, t_ms, direction`` (``in``/``out``).
        zone_visits: ``person_id, zone_id, enter_ms, exit_ms`` (raw enter→leave).
        queue_events: ``person_id, zone_id, service_point_zone_id, join_ms, served_ms,
            abandoned, left_ms``: join = first in the queue zone, served = reached a
            service position, left = service over or gave up (NA: still there at the end).
        occupancy: ``t_ms, zone_id, count, staff`` every second; ``__store__`` is the store.
        observations: ``camera_id, track_id, t_ms, x_m, y_m`` sorted by ``t_ms``.
        track_owners: ``camera_id, track_id, person_id``: who each camera track really was.
        camera_outages: ``camera_id, from_ms, to_ms``.
        camera_uptime: per camera, the share of the run it was up.
        stats: timings and counts.
    """

    scenario: str
    seed: int
    start_ms: int
    end_ms: int
    sample_rate_hz: float
    persons: pd.DataFrame
    trajectories: pd.DataFrame
    line_crossings: pd.DataFrame
    zone_visits: pd.DataFrame
    queue_events: pd.DataFrame
    occupancy: pd.DataFrame
    observations: pd.DataFrame
    track_owners: pd.DataFrame
    camera_outages: pd.DataFrame
    camera_uptime: dict[str, float]
    stats: SimStats

    def write_csv(self, path: str | Path) -> Path:
        """Write the camera observations as CSV, the ingest format of ``footfall ingest``.

        Args:
            path: the file to write (its folder must exist).

        Returns:
            The path written.
        """
        p = Path(path)
        self.observations[OBSERVATION_COLUMNS].to_csv(p, index=False, float_format="%.4f")
        return p

    def truth_dict(self, *, include_trajectories: bool = False) -> dict[str, Any]:
        """The ground truth as plain JSON-ready data.

        Args:
            include_trajectories: also list every trajectory sample (large).

        Returns:
            A dict with the run's metadata and one list of records per truth table;
            occupancy is per zone, one count per second from ``start_ms``.
        """
        occ: dict[str, dict[str, Any]] = {}
        for zone_id, group in self.occupancy.groupby("zone_id", sort=False):
            occ[str(zone_id)] = {
                "t0_ms": int(group["t_ms"].iloc[0]),
                "step_ms": 1000,
                "count": [int(v) for v in group["count"]],
                "staff": [int(v) for v in group["staff"]],
            }
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "seed": self.seed,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "sample_rate_hz": self.sample_rate_hz,
            "persons": _records(self.persons),
            "line_crossings": _records(self.line_crossings),
            "zone_visits": _records(self.zone_visits),
            "queue_events": _records(self.queue_events),
            "occupancy": occ,
            "camera_outages": _records(self.camera_outages),
            "camera_uptime": self.camera_uptime,
            "track_owners": _records(self.track_owners),
        }
        if include_trajectories:
            out["trajectories"] = _records(self.trajectories)
        return out

    def truth_json(self, *, include_trajectories: bool = False, indent: int | None = None) -> str:
        """The ground truth as JSON text (see :meth:`truth_dict`)."""
        return json.dumps(self.truth_dict(include_trajectories=include_trajectories), indent=indent)


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(df.columns)
    return [
        {c: _plain(v) for c, v in zip(cols, row, strict=True)}
        for row in df.itertuples(index=False, name=None)
    ]
