"""The engine against simulated ground truth: the subset of `make accuracy` that CI runs.

Scenarios are simulated in the test (JuPedSim, seeds stated), pushed through the real
chain (CSV → ingest → SQLite → engine) and compared with the simulator's exact truth.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab.accuracy import TARGETS, run_scenario, worst_inout

pytestmark = pytest.mark.sim


def num(errors: dict[str, float | int | None], key: str) -> float:
    value = errors[key]
    assert value is not None, f"{key} was not measured"
    return float(value)


@pytest.mark.parametrize(
    ("layout", "seed"), [("corner_shop", 1), ("fashion", 1), ("supermarket", 1)]
)
def test_perfect_observations_give_exact_answers(layout: str, seed: int) -> None:
    e = run_scenario(layout, seed, "perfect", duration_s=1800).errors
    bars = TARGETS["perfect"]
    assert worst_inout(e) == 0.0, e
    assert e["double_counts"] == 0
    assert num(e, "occupancy_mae") <= bars["occupancy_mae"]
    assert e["transitions_exact"] is True
    assert num(e, "dwell_p50_rel_err") <= bars["dwell"]
    assert num(e, "dwell_p90_rel_err") <= bars["dwell"]
    assert num(e, "queue_mean_wait_rel_err") <= bars["queue"]


def test_realistic_noise_single_camera() -> None:
    e = run_scenario("corner_shop", 2, "realistic", duration_s=1800).errors
    bars = TARGETS["realistic"]
    assert worst_inout(e) <= bars["inout"], e
    assert e["double_counts"] == bars["double"]
    assert num(e, "occupancy_mae") < bars["occupancy_mae"]
    assert num(e, "dwell_p50_rel_err") <= bars["dwell"]
    assert num(e, "queue_mean_wait_rel_err") <= bars["queue"]
    assert e["predicted_wait_mae_s"] is not None  # stated in the README table


def test_accuracy_json_reports_every_metric_per_run() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "accuracy", "--layouts", "corner_shop",
         "--seeds", "1", "--duration", "600", "--json"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)
    assert [(r["layout"], r["seed"], r["mode"]) for r in runs] == [
        ("corner_shop", 1, "perfect"),
        ("corner_shop", 1, "realistic"),
    ]
    for key in ("occupancy_mae", "dwell_p50_rel_err", "queue_mean_wait_rel_err", "double_counts"):
        assert all(key in r for r in runs)
