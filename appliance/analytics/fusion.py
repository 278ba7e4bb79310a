"""Turning per-camera tracks into people: cross-camera fusion and ID-switch stitching.

Two kinds of links join ``(camera_id, track_id)`` tracks into one person:

* **overlap**: two tracks from different cameras that are, most of the time they
  coexist, within ``radius_m`` of each other in the same time step are one person
  seen twice (so nobody is counted twice where cameras overlap);
* **stitch**: a track that starts within ``stitch_gap_s`` of another's end (same or
  other camera), within ``stitch_radius_m`` of where that one's walk would have taken
  it and without reversing its heading, continues it (an ID switch or a hand-over
  between cameras).

Linked tracks are merged with union-find; a person's position in a time step is
the mean of its tracks' points in that step, averaged over as many steps as the
measured detector jitter needs (none for exact positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial import cKDTree

POINT_COLUMNS = ["camera_id", "track_id", "t_ms", "x_m", "y_m"]


@dataclass(frozen=True, slots=True)
class FusionSettings:
    """Thresholds of the fusion step.

    Attributes:
        step_ms: time step people are resampled to.
        radius_m: two cameras' points closer than this in one step may be one person.
        min_overlap_share: share of co-existing steps that must be close to link.
        min_overlap_steps: and at least this many close steps.
        max_mean_distance_m: and on average this close (two people walking side by side
            are farther apart than two cameras' views of one person).
        stitch_gap_s: a track starting this soon after another ended may continue it.
        stitch_radius_m: ... and this close to where its walk would have taken it by then
            (plus walking speed x gap: it may have stopped or turned).
        walk_speed_mps: the walking speed that widens the stitch radius with the gap.
        still_m: a track that moved less than this over the stretch its velocity is
            measured on (20 points, fewer in a short track) has no heading (stitching
            ignores it): it stands, or its velocity is jitter.
        max_turn_deg: a continuation's heading differs from the ended track's by at
            most this much (two people passing each other: about 180 degrees).
        jitter_target_m: people's positions are averaged (centred, over consecutive
            steps) over just enough steps to bring the measured detector jitter down to
            this; exact positions are not averaged at all.
        max_smooth_steps: and over at most this many steps.
    """

    step_ms: int = 100
    radius_m: float = 0.8
    min_overlap_share: float = 0.6
    min_overlap_steps: int = 5
    max_mean_distance_m: float = 0.4
    stitch_gap_s: float = 1.0
    stitch_radius_m: float = 0.6
    walk_speed_mps: float = 1.6
    still_m: float = 0.8
    max_turn_deg: float = 120.0
    jitter_target_m: float = 0.07
    max_smooth_steps: int = 9


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _overlap_links(
    pts: pd.DataFrame, tracks: pd.DataFrame, settings: FusionSettings
) -> list[tuple[int, int]]:
    """Pairs of track indices (different cameras) that are one person seen twice.

    Candidates are tracks within ``radius_m`` in one step for most of the steps they
    coexist; they are then accepted closest pair first, and a track takes at most one
    partner per other camera at a time, so two customers standing side by side in a
    queue are never merged into one.
    """
    if pts["camera_id"].nunique() < 2:
        return []
    # One KD-tree over (x, y, step * big): pairs can only fall in the same step.
    big = 1e6
    xy = pts[["x_m", "y_m"]].to_numpy(float)
    coords = np.column_stack([xy, pts["step"].to_numpy() * big])
    pairs = cKDTree(coords).query_pairs(settings.radius_m, output_type="ndarray")
    if len(pairs) == 0:
        return []
    tix = pts["tix"].to_numpy()
    cam = pts["cam_code"].to_numpy()
    keep = cam[pairs[:, 0]] != cam[pairs[:, 1]]
    pairs = pairs[keep]
    if len(pairs) == 0:
        return []
    a, b = tix[pairs[:, 0]], tix[pairs[:, 1]]
    close = pd.DataFrame(
        {
            "a": np.minimum(a, b),
            "b": np.maximum(a, b),
            "step": pts["step"].to_numpy()[pairs[:, 0]],
            "d": np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T),
        }
    )
    per_pair = close.groupby(["a", "b"]).agg(steps=("step", "nunique"), d=("d", "mean"))
    # steps in which both tracks exist
    steps = pts[["tix", "step"]].drop_duplicates()
    both = (
        per_pair.reset_index()[["a", "b"]]
        .merge(steps.rename(columns={"tix": "a"}), on="a")
        .merge(steps.rename(columns={"tix": "b"}), on=["b", "step"])
        .groupby(["a", "b"])
        .size()
    )
    share = per_pair["steps"] / both.reindex(per_pair.index)
    ok = (
        (share >= settings.min_overlap_share)
        & (per_pair["steps"] >= settings.min_overlap_steps)
        & (per_pair["d"] <= settings.max_mean_distance_m)
    )
    cams = tracks.set_index("tix")
    partners: dict[tuple[int, int], list[int]] = {}
    links = []
    for (ta, tb), _ in per_pair[ok].sort_values("d").iterrows():
        if _busy(partners, cams, ta, tb) or _busy(partners, cams, tb, ta):
            continue
        partners.setdefault((ta, int(cams.at[tb, "cam"])), []).append(tb)
        partners.setdefault((tb, int(cams.at[ta, "cam"])), []).append(ta)
        links.append((int(ta), int(tb)))
    return links


def _busy(
    partners: dict[tuple[int, int], list[int]], tracks: pd.DataFrame, track: int, other: int
) -> bool:
    """Whether ``track`` already has a partner on ``other``'s camera at ``other``'s time."""
    for p in partners.get((track, int(tracks.at[other, "cam"])), []):
        if (
            tracks.at[p, "t_start"] <= tracks.at[other, "t_end"]
            and tracks.at[other, "t_start"] <= tracks.at[p, "t_end"]
        ):
            return True
    return False


def _stitch_links(tracks: pd.DataFrame, settings: FusionSettings) -> list[tuple[int, int]]:
    """Pairs (ended track, started track) where one continues the other.

    Only people who vanished are continued: if another camera still sees the ended
    person (their overlap group lasts on), or already saw the new one, it is not a
    continuation but two people passing the same spot. Every track that ended within
    ``stitch_gap_s`` before a start is a candidate (in a busy store other tracks end
    in the same instant); pairs are then taken shortest gap first, then closest, each
    track at most once.
    """
    if len(tracks) < 2:
        return []
    gap_ms = round(settings.stitch_gap_s * 1000)
    # seen until the end of the data is still there, not vanished
    vanished = (tracks["group_end"] <= tracks["t_end"] + gap_ms) & (
        tracks["group_end"] < tracks["t_end"].max()
    )
    appeared = tracks["group_start"] >= tracks["t_start"] - gap_ms
    ends = tracks.loc[
        vanished, ["tix", "t_end", "x_end", "y_end", "vx_end", "vy_end", "span_end_s"]
    ]
    ends = ends.sort_values("t_end")
    starts = tracks.loc[
        appeared, ["tix", "t_start", "x_start", "y_start", "vx_start", "vy_start", "span_start_s"]
    ]
    t_end = ends["t_end"].to_numpy()
    t_start = starts["t_start"].to_numpy()
    lo = np.searchsorted(t_end, t_start - gap_ms, side="left")
    hi = np.searchsorted(t_end, t_start, side="right")
    n = hi - lo
    if n.sum() == 0:
        return []
    start_row = np.repeat(np.arange(len(starts)), n)
    end_row = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())
    cand = pd.concat(
        [
            starts.iloc[start_row].reset_index(drop=True),
            ends.iloc[end_row].rename(columns={"tix": "prev"}).reset_index(drop=True),
        ],
        axis=1,
    )
    gap_s = (cand["t_start"] - cand["t_end"]) / 1000
    # how far the new track starts from where the ended one's walk would have gone
    dist = np.hypot(
        cand["x_start"] - (cand["x_end"] + cand["vx_end"] * gap_s),
        cand["y_start"] - (cand["y_end"] + cand["vy_end"] * gap_s),
    )
    # one person leaving a camera's view while another walks in at the same spot move
    # in opposite directions; a real continuation may turn (velocities are measured
    # over 2 s, a turn into an aisle shows as 90 degrees) but not reverse
    dot = cand["vx_end"] * cand["vx_start"] + cand["vy_end"] * cand["vy_start"]
    speed_end = np.hypot(cand["vx_end"], cand["vy_end"])
    speed_start = np.hypot(cand["vx_start"], cand["vy_start"])
    turn_cos = dot / np.maximum(speed_end * speed_start, 1e-9)
    moved = np.minimum(speed_end * cand["span_end_s"], speed_start * cand["span_start_s"])
    heading = (turn_cos >= np.cos(np.radians(settings.max_turn_deg))) | (moved < settings.still_m)
    ok = (
        (dist <= settings.stitch_radius_m + settings.walk_speed_mps * gap_s)
        & (cand["prev"] != cand["tix"])
        & heading
    )
    # a track continues in the first track that fits (a later one continues that one)
    chosen = cand.assign(gap=gap_s, dist=dist)[ok].sort_values(["gap", "dist"], kind="stable")
    links: list[tuple[int, int]] = []
    used_prev: set[int] = set()
    used_next: set[int] = set()
    for prev, nxt in zip(chosen["prev"].to_numpy(), chosen["tix"].to_numpy(), strict=True):
        if prev in used_prev or nxt in used_next:
            continue
        used_prev.add(int(prev))
        used_next.add(int(nxt))
        links.append((int(prev), int(nxt)))
    return links


def track_ends(pts: pd.DataFrame, key: str = "tix", span: int = 20) -> pd.DataFrame:
    """First and last point of each track, and its velocity over ``span`` points there.

    Args:
        pts: points with ``t_ms, x_m, y_m`` and the track column ``key``.
        key: which column tells the tracks apart.
        span: how many points the velocities are measured over (fewer in short tracks).

    Returns:
        One row per track: ``key, t_start, x_start, y_start, vx_start, vy_start,
        span_start_s`` and the same for the end (velocities in m/s, 0 for a one-point
        track; ``span_*_s`` the seconds they were measured over).
    """
    pts = pts.sort_values([key, "t_ms"])
    g = pts.groupby(key)
    first, last = g.head(1).set_index(key), g.tail(1).set_index(key)
    n = g.cumcount()
    size = g["t_ms"].transform("size")
    early = pts[n == np.minimum(span, size - 1)].set_index(key)
    late = pts[n == np.maximum(size - 1 - span, 0)].set_index(key)

    def velocity(a: pd.DataFrame, b: pd.DataFrame, axis: str) -> pd.Series:
        dt = ((b["t_ms"] - a["t_ms"]) / 1000).where(lambda d: d > 0)
        return ((b[axis] - a[axis]) / dt).fillna(0.0)

    def span_s(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
        return (b["t_ms"] - a["t_ms"]) / 1000

    return pd.DataFrame(
        {
            "t_start": first["t_ms"],
            "x_start": first["x_m"],
            "y_start": first["y_m"],
            "vx_start": velocity(first, early, "x_m"),
            "vy_start": velocity(first, early, "y_m"),
            "span_start_s": span_s(first, early),
            "t_end": last["t_ms"],
            "x_end": last["x_m"],
            "y_end": last["y_m"],
            "vx_end": velocity(late, last, "x_m"),
            "vy_end": velocity(late, last, "y_m"),
            "span_end_s": span_s(late, last),
        }
    ).reset_index()


def link_people(
    points: pd.DataFrame, settings: FusionSettings | None = None
) -> npt.NDArray[np.int64]:
    """Which person each point belongs to: camera tracks joined by overlap and stitching.

    Args:
        points: columns ``camera_id, track_id, t_ms, x_m, y_m`` (not empty).
        settings: fusion thresholds.

    Returns:
        One dense person number per row of ``points``, meaningful only within this call.
    """
    s = settings or FusionSettings()
    pts = points[POINT_COLUMNS].copy()
    keys = pts["camera_id"].astype(str) + "\x00" + pts["track_id"].astype(str)
    pts["tix"], _ = pd.factorize(keys)
    pts["cam_code"], _ = pd.factorize(pts["camera_id"])
    pts["step"] = (pts["t_ms"] // s.step_ms).astype(np.int64)
    tracks = track_ends(pts)
    uf = _UnionFind(len(tracks))
    tracks["cam"] = pts.groupby("tix")["cam_code"].first().reindex(tracks["tix"]).to_numpy()
    for a, b in _overlap_links(pts, tracks, s):
        uf.union(a, b)
    # what each overlap group (one person across cameras) spans, for the stitch rule
    group = np.fromiter((uf.find(i) for i in range(len(tracks))), np.int64, len(tracks))
    tracks["group_start"] = tracks.groupby(group)["t_start"].transform("min").to_numpy()
    tracks["group_end"] = tracks.groupby(group)["t_end"].transform("max").to_numpy()
    for a, b in _stitch_links(tracks, s):
        uf.union(a, b)
    roots = np.fromiter((uf.find(i) for i in range(len(tracks))), np.int64, len(tracks))
    person, _ = pd.factorize(roots)
    return np.asarray(person[pts["tix"].to_numpy()], dtype=np.int64)


def resample_people(points: pd.DataFrame, settings: FusionSettings | None = None) -> pd.DataFrame:
    """One (smoothed) position per person per time step.

    Args:
        points: columns ``person, t_ms, x_m, y_m`` (``person`` from :func:`link_people`).
        settings: fusion thresholds (the step and the smoothing).

    Returns:
        Columns ``person, t_ms, x_m, y_m`` on the step grid, sorted by person then time.
    """
    s = settings or FusionSettings()
    pts = points.assign(step=(points["t_ms"] // s.step_ms).astype(np.int64))
    fused = pts.groupby(["person", "step"], sort=True)[["x_m", "y_m"]].mean().reset_index()
    fused["t_ms"] = fused["step"] * s.step_ms
    steps = smoothing_steps(jitter(fused), s)
    if steps > 1:
        by = fused.groupby("person")[["x_m", "y_m"]]
        smooth = by.rolling(steps, center=True, min_periods=1).mean()
        fused[["x_m", "y_m"]] = smooth.reset_index(level=0, drop=True).sort_index()
    return fused[["person", "t_ms", "x_m", "y_m"]]


def fuse(points: pd.DataFrame, settings: FusionSettings | None = None) -> pd.DataFrame:
    """Merge camera tracks into people and resample them to one point per step.

    Args:
        points: columns ``camera_id, track_id, t_ms, x_m, y_m``.
        settings: fusion thresholds.

    Returns:
        Columns ``person, t_ms, x_m, y_m`` (``t_ms`` on the step grid), sorted by
        person then time; ``person`` is a dense integer, meaningful only here.
    """
    s = settings or FusionSettings()
    if points.empty:
        return pd.DataFrame({"person": [], "t_ms": [], "x_m": [], "y_m": []}).astype(
            {"person": np.int64, "t_ms": np.int64, "x_m": float, "y_m": float}
        )
    people = points[["t_ms", "x_m", "y_m"]].assign(person=link_people(points, s))
    return resample_people(people, s)


def jitter(fused: pd.DataFrame) -> float | None:
    """Detector jitter per axis (m), from second differences of evenly spaced points.

    Walking is smooth at this time scale (even a sharp turn moves a point by about a
    centimetre from the straight line between its neighbours), so what second
    differences show is jitter: for independent noise of sigma per axis they have a
    standard deviation of sqrt(6) sigma. The median makes turns and track joins
    outliers. None when no person has three evenly spaced points.
    """
    t = fused["t_ms"].to_numpy(np.int64)
    same = fused["person"].to_numpy()
    even = (
        (same[1:-1] == same[:-2]) & (same[1:-1] == same[2:]) & (t[1:-1] - t[:-2] == t[2:] - t[1:-1])
    )
    if not even.any():
        return None
    d2 = [
        (v[2:] - 2 * v[1:-1] + v[:-2])[even]
        for v in (fused["x_m"].to_numpy(float), fused["y_m"].to_numpy(float))
    ]
    return float(1.4826 * np.median(np.abs(np.concatenate(d2))) / np.sqrt(6))


def smoothing_steps(sigma_m: float | None, settings: FusionSettings) -> int:
    """The odd number of steps whose mean brings jitter ``sigma_m`` to the target.

    The mean of n independent points has sigma / sqrt(n); unknown jitter gets the most.
    """
    if sigma_m is None:
        return settings.max_smooth_steps
    n = int(np.ceil((sigma_m / settings.jitter_target_m) ** 2))
    return int(min(n + (n + 1) % 2, settings.max_smooth_steps))


def person_count(fused: pd.DataFrame) -> int:
    """Number of distinct people after fusion."""
    return int(fused["person"].nunique())


def step_seconds(fused: pd.DataFrame, cap_s: float) -> npt.NDArray[np.float64]:
    """Seconds each fused point stands for: time to the person's next point, capped."""
    nxt = fused.groupby("person")["t_ms"].shift(-1)
    dt = ((nxt - fused["t_ms"]) / 1000).to_numpy(dtype=float)
    return np.where(np.isnan(dt), 0.0, np.minimum(dt, cap_s))
