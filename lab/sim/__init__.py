"""A simulated store: JuPedSim pedestrians, exact ground truth, and noisy camera tracks.

Used to measure the analytics engine against answers known exactly. The store is the
box's own config (``appliance.config``): the simulated store and the analytics share
its floor plan, lines and zones.
"""

from lab.sim.geometry import GeometryError, StoreGeometry
from lab.sim.layout import LayoutError
from lab.sim.result import OBSERVATION_COLUMNS, SimResult, SimStats
from lab.sim.run import simulate, simulate_file
from lab.sim.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    load_store_geometry,
    parse_scenario,
)
from lab.sim.truth import STORE_ZONE_ID

__all__ = [
    "OBSERVATION_COLUMNS",
    "STORE_ZONE_ID",
    "GeometryError",
    "LayoutError",
    "Scenario",
    "ScenarioError",
    "SimResult",
    "SimStats",
    "StoreGeometry",
    "load_scenario",
    "load_store_geometry",
    "parse_scenario",
    "simulate",
    "simulate_file",
]
