"""A simulated store: JuPedSim pedestrians, exact ground truth, and noisy camera tracks.

Used to measure the analytics engine against answers known exactly. It never
imports ``appliance``: the store geometry is read from a config's plain YAML.
"""

from lab.sim.geometry import (
    GeometryError,
    Line,
    StoreGeometry,
    Zone,
    geometry_from_config_dict,
)
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
    "Line",
    "Scenario",
    "ScenarioError",
    "SimResult",
    "SimStats",
    "StoreGeometry",
    "Zone",
    "geometry_from_config_dict",
    "load_scenario",
    "load_store_geometry",
    "parse_scenario",
    "simulate",
    "simulate_file",
]
