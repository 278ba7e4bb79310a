"""The simulated store: scenario validation, ground-truth consistency, camera noise."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon

from appliance.config import load_config
from lab.sim import (
    OBSERVATION_COLUMNS,
    STORE_ZONE_ID,
    LayoutError,
    Scenario,
    ScenarioError,
    SimResult,
    StoreGeometry,
    load_scenario,
    load_store_geometry,
    parse_scenario,
    simulate,
)
from lab.sim.distributions import Fixed
from lab.sim.geometry import zone_shape
from lab.sim.layout import build_layout
from lab.sim.scenario import Abandon, CameraOutage, Noise

pytestmark = pytest.mark.sim

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "sim"
CORNER = EXAMPLES / "corner_shop" / "scenario.yaml"
FASHION = EXAMPLES / "fashion" / "scenario.yaml"
LAYOUTS = ("corner_shop", "fashion", "supermarket")

PERFECT = Noise(jitter_sigma_m=0.0, miss_probability=0.0, id_switch_mean_s=None)
NOISY = Noise(jitter_sigma_m=0.1, miss_probability=0.1, miss_burst_s=0.5, id_switch_mean_s=20.0)


def _scenario(path: Path, minutes: float, **update: object) -> tuple[Scenario, StoreGeometry]:
    sc = load_scenario(path)
    arrivals = sc.arrivals.model_copy(update={"duration_s": minutes * 60})
    sc = sc.model_copy(update={"arrivals": arrivals, **update})
    return sc, load_store_geometry(sc, path)


@pytest.fixture(scope="module")
def perfect() -> tuple[Scenario, StoreGeometry, SimResult]:
    sc, geo = _scenario(CORNER, 10, noise=PERFECT)
    return sc, geo, simulate(sc, geo, seed=1)


@pytest.fixture(scope="module")
def noisy() -> tuple[Scenario, StoreGeometry, SimResult]:
    sc, geo = _scenario(CORNER, 10, noise=NOISY)
    return sc, geo, simulate(sc, geo, seed=1)


@pytest.fixture(scope="module")
def fashion() -> tuple[Scenario, StoreGeometry, SimResult]:
    sc, geo = _scenario(FASHION, 5)
    return sc, geo, simulate(sc, geo, seed=2)


def _with_owner(r: SimResult) -> pd.DataFrame:
    """Observations joined to the true position of the person behind each track."""
    obs = r.observations.merge(r.track_owners, on=["camera_id", "track_id"], how="left")
    assert obs["person_id"].notna().all()
    truth = r.trajectories.rename(columns={"x_m": "true_x", "y_m": "true_y"})
    out = obs.merge(truth, on=["person_id", "t_ms"], how="left")
    assert out["true_x"].notna().all()
    return out


def _in_fov(r: SimResult, sc: Scenario, camera_id: str) -> pd.DataFrame:
    fov = Polygon(next(c.fov for c in sc.cameras if c.id == camera_id))
    t = r.trajectories
    return t[shapely.contains_xy(fov, t["x_m"].to_numpy(), t["y_m"].to_numpy())]


# ----------------------------------------------------------------- scenario file


def test_scenario_with_a_typo_is_rejected_naming_the_key() -> None:
    text = CORNER.read_text().replace("  jitter_sigma_m: 0.08", "  jiter_sigma_m: 0.08")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "typo.yaml")
    message = str(err.value)
    assert "noise.jiter_sigma_m" in message and "unknown key" in message
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "jiter_sigma_m" in s)
    assert f"typo.yaml:{line}:" in message


def test_bad_distribution_and_overloaded_tills_are_rejected() -> None:
    text = CORNER.read_text()
    with pytest.raises(ScenarioError, match=r"displays\.0\.dwell_s\.median"):
        parse_scenario(text.replace("median: 25, sigma: 0.6", "median: -1, sigma: 0.6"))
    busy = text.replace("per_minute: 1.5", "per_minute: 3")
    with pytest.raises(ScenarioError, match="allow_overflow"):
        parse_scenario(busy)
    parse_scenario(busy.replace("per_minute: 3", "per_minute: 3\n  allow_overflow: true"))


def test_scenario_naming_an_unknown_zone_does_not_fit_the_store() -> None:
    sc = load_scenario(CORNER)
    geo = load_store_geometry(sc, CORNER)
    bad = sc.model_copy(update={"displays": [sc.displays[0].model_copy(update={"zone": "nope"})]})
    with pytest.raises(LayoutError, match=r"displays\[0\]\.zone: no zone 'nope'"):
        build_layout(bad, geo)
    wrong_kind = sc.model_copy(
        update={"displays": [sc.displays[0].model_copy(update={"zone": "till-queue"})]}
    )
    with pytest.raises(LayoutError, match="is a queue zone"):
        build_layout(wrong_kind, geo)
    other_camera = sc.model_copy(
        update={"cameras": [sc.cameras[0].model_copy(update={"id": "door-cam"})]}
    )
    with pytest.raises(LayoutError, match=r"cameras\[0\]\.id: no camera 'door-cam'"):
        build_layout(other_camera, geo)


def test_a_store_config_the_box_refuses_the_simulator_refuses_too_naming_its_line(
    tmp_path: Path,
) -> None:
    # the simulator reads the store through the box's config model, not a copy of its rules
    for name in ("scenario.yaml", "store.yaml"):
        (tmp_path / name).write_text((CORNER.parent / name).read_text())
    store = (tmp_path / "store.yaml").read_text()
    line = store.splitlines().index("    kind: display") + 1
    (tmp_path / "store.yaml").write_text(store.replace("    kind: display", "    kind: shelf", 1))
    sc = load_scenario(tmp_path / "scenario.yaml")
    with pytest.raises(ScenarioError) as err:
        load_store_geometry(sc, tmp_path / "scenario.yaml")
    issues = [str(issue) for issue in err.value.issues]
    assert issues[0].startswith(f"{tmp_path / 'scenario.yaml'}:1: store_config: ")
    assert any(i.startswith(f"{tmp_path / 'store.yaml'}:{line}: zones.") for i in issues), issues


@pytest.mark.parametrize("name", LAYOUTS)
def test_example_layouts_are_valid_store_configs_and_fit(name: str) -> None:
    store = EXAMPLES / name / "store.yaml"
    config = load_config(store)  # what `footfall config check` validates
    sc = load_scenario(EXAMPLES / name / "scenario.yaml")
    geo = load_store_geometry(sc, EXAMPLES / name / "scenario.yaml")
    assert {z.id for z in geo.zones} == {z.id for z in config.zones}
    assert {ln.id for ln in geo.lines} == {ln.id for ln in config.lines}
    assert geo.timezone == config.store.timezone
    assert geo.cameras == tuple(c.id for c in config.cameras)
    kinds = {z.kind for z in config.zones}
    assert {"entrance", "display", "queue", "service_point", "staff_only"} <= kinds
    layout = build_layout(sc, geo)
    assert len(layout.tills) == len(sc.tills) and all(t.slots for t in layout.tills)


# ----------------------------------------------------------------- ground truth


def test_a_short_simulation_runs_and_drains(
    perfect: tuple[Scenario, StoreGeometry, SimResult],
) -> None:
    _, _, r = perfect
    customers = r.persons[~r.persons["is_staff"]]
    assert len(customers) >= 5
    assert customers["gone_ms"].notna().all()  # everybody left
    assert r.persons[r.persons["is_staff"]]["gone_ms"].isna().all()  # staff stayed
    assert r.trajectories["t_ms"].diff().fillna(0).ge(-(10**13)).all()
    steps = r.trajectories.groupby("person_id")["t_ms"].diff().dropna()
    assert (steps == 100).all()  # 10 Hz, no holes


def test_every_customer_crosses_in_then_out(
    perfect: tuple[Scenario, StoreGeometry, SimResult],
) -> None:
    _, _, r = perfect
    crossings = r.line_crossings
    customers = set(r.persons.loc[~r.persons["is_staff"], "person_id"])
    assert set(crossings["person_id"]) == customers
    for _, seq in crossings.groupby("person_id"):
        directions = list(seq.sort_values("t_ms")["direction"])
        assert directions[0] == "in" and directions[-1] == "out"
        assert all(a != b for a, b in itertools.pairwise(directions))
    assert (crossings["direction"] == "in").sum() == (crossings["direction"] == "out").sum()


def test_store_occupancy_agrees_with_door_crossings(
    perfect: tuple[Scenario, StoreGeometry, SimResult],
) -> None:
    # the door line lies on the floor plan's edge, so people inside the floor
    # rectangle (by area) must equal ins minus outs (by line), every second
    _, _, r = perfect
    store = r.occupancy[r.occupancy["zone_id"] == STORE_ZONE_ID]
    customers_inside = (store["count"] - store["staff"]).to_numpy()
    c = r.line_crossings
    t = store["t_ms"].to_numpy()
    ins = np.searchsorted(np.sort(c.loc[c["direction"] == "in", "t_ms"]), t, side="right")
    outs = np.searchsorted(np.sort(c.loc[c["direction"] == "out", "t_ms"]), t, side="right")
    assert (customers_inside == ins - outs).all()
    assert customers_inside.max() >= 1 and customers_inside[-1] == 0


def test_zone_visits_lie_within_trajectories(
    perfect: tuple[Scenario, StoreGeometry, SimResult],
) -> None:
    _, geo, r = perfect
    assert set(r.zone_visits["zone_id"]) >= {"door-mat", "till-queue", "till", "behind-counter"}
    by_person = {pid: g for pid, g in r.trajectories.groupby("person_id")}
    for visit in r.zone_visits.itertuples():
        poly = zone_shape(geo.zone(visit.zone_id))
        pts = by_person[visit.person_id]
        end = np.iinfo(np.int64).max if pd.isna(visit.exit_ms) else int(visit.exit_ms)
        during = pts[(pts["t_ms"] >= visit.enter_ms) & (pts["t_ms"] < end)]
        assert len(during) >= 1
        assert shapely.contains_xy(poly, during["x_m"], during["y_m"]).all()
        before = pts[pts["t_ms"] == visit.enter_ms - 100]
        after = pts[pts["t_ms"] == end]
        for edge in (before, after):
            assert not shapely.contains_xy(poly, edge["x_m"], edge["y_m"]).any()


def test_queue_events_are_consistent(perfect: tuple[Scenario, StoreGeometry, SimResult]) -> None:
    _, geo, r = perfect
    q = r.queue_events
    assert len(q) >= 3
    served = q["served_ms"].notna()
    assert (q["abandoned"] == ~served).all()
    assert (q.loc[served, "served_ms"] >= q.loc[served, "join_ms"]).all()
    assert (q["left_ms"] >= q["join_ms"]).all()
    assert (q.loc[served, "left_ms"] > q.loc[served, "served_ms"]).all()
    traj = r.trajectories.set_index(["person_id", "t_ms"])
    service = zone_shape(geo.zone("till")).buffer(0.05)
    queue = zone_shape(geo.zone("till-queue"))
    for ev in q.itertuples():
        x, y = traj.loc[(ev.person_id, ev.join_ms), ["x_m", "y_m"]]
        assert queue.contains(shapely.Point(x, y))
        if not pd.isna(ev.served_ms):
            x, y = traj.loc[(ev.person_id, int(ev.served_ms)), ["x_m", "y_m"]]
            assert service.contains(shapely.Point(x, y))


def test_abandonment_happens_when_patience_runs_out() -> None:
    impatient = Abandon(probability=1.0, patience_s=Fixed(dist="fixed", value=2.0))
    sc, geo = _scenario(CORNER, 10, abandon=impatient)
    r = simulate(sc, geo, seed=1)
    q = r.queue_events
    gave_up = q[q["abandoned"]]
    assert len(gave_up) >= 1
    assert gave_up["served_ms"].isna().all()
    assert ((gave_up["left_ms"] - gave_up["join_ms"]) >= 2000).all()
    assert ((gave_up["left_ms"] - gave_up["join_ms"]) <= 2200).all()


# ----------------------------------------------------------------- observations


def test_perfect_observation_reproduces_truth_inside_each_view(
    perfect: tuple[Scenario, StoreGeometry, SimResult],
) -> None:
    sc, _, r = perfect
    assert list(r.observations.columns) == OBSERVATION_COLUMNS
    assert r.observations["t_ms"].is_monotonic_increasing
    for cam in sc.cameras:
        seen = r.observations[r.observations["camera_id"] == cam.id]
        truth = _in_fov(r, sc, cam.id)
        key = ["t_ms", "x_m", "y_m"]
        a = seen[key].sort_values(key).to_numpy()
        b = truth[key].sort_values(key).to_numpy()
        assert a.shape == b.shape and (a == b).all()
    joined = _with_owner(r)
    assert (joined["x_m"] == joined["true_x"]).all() and (joined["y_m"] == joined["true_y"]).all()
    # one id per stay in view: no switches
    assert r.track_owners.groupby("track_id")["person_id"].nunique().max() == 1


def test_noise_matches_its_settings(noisy: tuple[Scenario, StoreGeometry, SimResult]) -> None:
    sc, _, r = noisy
    joined = _with_owner(r)
    err = np.concatenate(
        [joined["x_m"] - joined["true_x"], joined["y_m"] - joined["true_y"]]
    ).astype(float)
    assert abs(err.mean()) < 0.005
    assert err.std() == pytest.approx(NOISY.jitter_sigma_m, rel=0.05)
    expected = sum(len(_in_fov(r, sc, c.id)) for c in sc.cameras)
    miss_rate = 1 - len(r.observations) / expected
    assert miss_rate == pytest.approx(NOISY.miss_probability, abs=0.02)
    # misses come in bursts of miss_burst_s on average
    runs: list[int] = []
    for cam in sc.cameras:
        mine = joined[joined["camera_id"] == cam.id]
        for pid, pts in _in_fov(r, sc, cam.id).groupby("person_id"):
            seen = mine.loc[mine["person_id"] == pid, "t_ms"].to_numpy()
            missed = ~np.isin(pts["t_ms"].to_numpy(), seen)
            edges = np.diff(np.r_[0, missed.astype(int), 0])
            runs += list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
    burst = NOISY.miss_burst_s * NOISY.sample_rate_hz
    assert len(runs) > 100 and np.mean(runs) == pytest.approx(burst, rel=0.2)
    # id switches: ids per stay in view, over the time in view
    keep_ticks = NOISY.track_keep_s * NOISY.sample_rate_hz
    stays, exposure_s = 0, 0.0
    for cam in sc.cameras:
        for _, pts in _in_fov(r, sc, cam.id).groupby("person_id"):
            ticks = pts["t_ms"].to_numpy() // 100
            breaks = np.flatnonzero(np.diff(ticks) > keep_ticks + 1)
            starts = np.r_[0, breaks + 1]
            ends = np.r_[breaks, len(ticks) - 1]
            stays += len(starts)
            exposure_s += float((ticks[ends] - ticks[starts]).sum()) / 10
    switches = len(r.track_owners) - stays
    assert NOISY.id_switch_mean_s is not None
    expected_switches = exposure_s / NOISY.id_switch_mean_s
    assert expected_switches > 50
    assert switches == pytest.approx(expected_switches, rel=0.3)


def test_ids_are_random_63_bit_and_differ_between_cameras(
    fashion: tuple[Scenario, StoreGeometry, SimResult],
) -> None:
    _, _, r = fashion
    ids = r.track_owners["track_id"]
    assert ids.is_unique and (ids > 0).all() and (ids < 2**63).all()
    assert ids.max() > 2**60  # not a counter
    per_person = r.track_owners.groupby("person_id")["camera_id"].nunique()
    assert (per_person == 2).any()  # somebody was seen by both overlapping cameras
    both = r.observations.merge(r.track_owners, on=["camera_id", "track_id"])
    same_time = both.groupby(["person_id", "t_ms"])["camera_id"].nunique()
    assert (same_time == 2).any()


@pytest.mark.parametrize("which", ["perfect", "noisy", "fashion"])
def test_points_outside_every_view_are_never_observed(
    which: str, request: pytest.FixtureRequest
) -> None:
    sc, _, r = request.getfixturevalue(which)
    joined = _with_owner(r)
    for cam in sc.cameras:
        fov = Polygon(cam.fov)
        mine = joined[joined["camera_id"] == cam.id]
        assert shapely.contains_xy(fov, mine["true_x"], mine["true_y"]).all()
    fovs = shapely.union_all([Polygon(c.fov) for c in sc.cameras])
    t = r.trajectories
    outside = t[~shapely.contains_xy(fovs, t["x_m"], t["y_m"])]
    assert len(outside) > 0  # people do walk outside the views (the pavement)
    seen = joined.set_index(["person_id", "t_ms"]).index
    assert not outside.set_index(["person_id", "t_ms"]).index.isin(seen).any()


def test_camera_outage_means_no_observations_and_is_listed() -> None:
    sc, geo = _scenario(
        CORNER, 5, noise=PERFECT, camera_outages=[CameraOutage(camera="shop", from_s=60, to_s=120)]
    )
    r = simulate(sc, geo, seed=1)
    t = r.observations["t_ms"] - r.start_ms
    assert not ((t >= 60_000) & (t < 120_000)).any()
    assert ((t >= 0) & (t < 60_000)).any() and ((t >= 120_000) & (t < 180_000)).any()
    assert r.camera_outages.to_dict("records") == [
        {"camera_id": "shop", "from_ms": r.start_ms + 60_000, "to_ms": r.start_ms + 120_000}
    ]
    span = r.end_ms - r.start_ms
    assert r.camera_uptime["shop"] == pytest.approx(1 - 60_000 / span)
    # a track does not survive an outage
    before = set(r.observations.loc[t < 60_000, "track_id"])
    after = set(r.observations.loc[t >= 120_000, "track_id"])
    assert not before & after


def test_same_seed_same_output_different_seed_different() -> None:
    sc, geo = _scenario(CORNER, 4, noise=NOISY)
    a, b, c = simulate(sc, geo, seed=5), simulate(sc, geo, seed=5), simulate(sc, geo, seed=6)
    pd.testing.assert_frame_equal(a.observations, b.observations)
    assert a.truth_json(include_trajectories=True) == b.truth_json(include_trajectories=True)
    assert a.truth_json() != c.truth_json()
    assert not a.observations.equals(c.observations)


def test_csv_and_truth_json(
    perfect: tuple[Scenario, StoreGeometry, SimResult], tmp_path: Path
) -> None:
    _, _, r = perfect
    path = r.write_csv(tmp_path / "obs.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "camera_id,track_id,t_ms,x_m,y_m"
    assert len(lines) == len(r.observations) + 1
    back = pd.read_csv(path)
    assert (back["track_id"].to_numpy() == r.observations["track_id"].to_numpy()).all()
    assert np.allclose(back["x_m"], r.observations["x_m"], atol=5e-5)
    truth = json.loads(r.truth_json())
    assert truth["start_ms"] == r.start_ms
    assert len(truth["line_crossings"]) == len(r.line_crossings)
    assert len(truth["occupancy"][STORE_ZONE_ID]["count"]) == len(
        r.occupancy[r.occupancy["zone_id"] == STORE_ZONE_ID]
    )
    assert "trajectories" not in truth
    assert len(json.loads(r.truth_json(include_trajectories=True))["trajectories"]) == len(
        r.trajectories
    )
