"""Turning per-camera tracks into people: cross-camera fusion and ID-switch stitching.

Two kinds of links join ``(camera_id, track_id)`` tracks into one person:

* **overlap**: two tracks from different cameras that are, most of the time they
  coexist, within ``radius_m`` of each other in the same time step are one person
  seen twice (so nobody is counted twice where cameras overlap);
* **stitch**: a track that starts within ``stitch_gap_s`` and ``stitch_radius_m``
  of where another track (same or other camera) ended continues it (an ID switch
  or a hand-over between cameras).

Linked tracks are merged with union-find; a person's position in a time step is
the mean of its tracks' points in that step.
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
        stitch_radius_m: ... and this close to where it ended (plus walking speed x gap).
        walk_speed_mps: the walking speed that widens the stitch radius with the gap.
        still_mps: below this speed a track has no heading (stitching ignores it).
        smooth_steps: centred moving average over this many steps of a person's
            positions (1 = none): detector jitter averages out before lines and zones.
    """

    step_ms: int = 100
    radius_m: float = 0.8
    min_overlap_share: float = 0.6
    min_overlap_steps: int = 5
    max_mean_distance_m: float = 0.4
    stitch_gap_s: float = 1.0
    stitch_radius_m: float = 0.6
    walk_speed_mps: float = 1.6
    still_mps: float = 0.4
    smooth_steps: int = 5


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
    continuation but two people passing the same spot.
    """
    if len(tracks) < 2:
        return []
    gap_ms = round(settings.stitch_gap_s * 1000)
    # seen until the end of the data is still there, not vanished
    vanished = (tracks["group_end"] <= tracks["t_end"] + gap_ms) & (
        tracks["group_end"] < tracks["t_end"].max()
    )
    appeared = tracks["group_start"] >= tracks["t_start"] - gap_ms
    ends = tracks.loc[vanished, ["tix", "t_end", "x_end", "y_end", "vx_end", "vy_end"]]
    ends = ends.sort_values("t_end")
    starts = tracks.loc[appeared, ["tix", "t_start", "x_start", "y_start", "vx_start", "vy_start"]]
    starts = starts.sort_values("t_start")
    cand = pd.merge_asof(
        starts,
        ends.rename(columns={"tix": "prev"}),
        left_on="t_start",
        right_on="t_end",
        direction="backward",
        tolerance=gap_ms,
        allow_exact_matches=True,
    ).dropna(subset=["prev"])
    if cand.empty:
        return []
    gap_s = (cand["t_start"] - cand["t_end"]) / 1000
    dist = np.hypot(cand["x_start"] - cand["x_end"], cand["y_start"] - cand["y_end"])
    # one person leaving a camera's view while another walks in at the same spot move
    # in opposite directions; a real continuation keeps its heading (or stands still)
    dot = cand["vx_end"] * cand["vx_start"] + cand["vy_end"] * cand["vy_start"]
    slow = np.minimum(
        np.hypot(cand["vx_end"], cand["vy_end"]), np.hypot(cand["vx_start"], cand["vy_start"])
    )
    heading = (dot > 0) | (slow < settings.still_mps)
    ok = (
        (dist <= settings.stitch_radius_m + settings.walk_speed_mps * gap_s)
        & (cand["prev"] != cand["tix"])
        & heading
    )
    # an ended track continues in at most one new track: the closest
    chosen = cand.assign(dist=dist)[ok].sort_values("dist").drop_duplicates("prev")
    return [(int(p), int(t)) for p, t in zip(chosen["prev"], chosen["tix"], strict=True)]


def _track_ends(pts: pd.DataFrame, span: int = 20) -> pd.DataFrame:
    """First and last point of each track, and its velocity over ``span`` points there."""
    pts = pts.sort_values(["tix", "t_ms"])
    g = pts.groupby("tix")
    first, last = g.head(1).set_index("tix"), g.tail(1).set_index("tix")
    n = g.cumcount()
    size = g["t_ms"].transform("size")
    early = pts[n == np.minimum(span, size - 1)].set_index("tix")
    late = pts[n == np.maximum(size - 1 - span, 0)].set_index("tix")

    def velocity(a: pd.DataFrame, b: pd.DataFrame, axis: str) -> pd.Series:
        dt = ((b["t_ms"] - a["t_ms"]) / 1000).where(lambda d: d > 0)
        return ((b[axis] - a[axis]) / dt).fillna(0.0)

    return pd.DataFrame(
        {
            "t_start": first["t_ms"],
            "x_start": first["x_m"],
            "y_start": first["y_m"],
            "vx_start": velocity(first, early, "x_m"),
            "vy_start": velocity(first, early, "y_m"),
            "t_end": last["t_ms"],
            "x_end": last["x_m"],
            "y_end": last["y_m"],
            "vx_end": velocity(late, last, "x_m"),
            "vy_end": velocity(late, last, "y_m"),
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
    tracks = _track_ends(pts)
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
    if s.smooth_steps > 1:
        by = fused.groupby("person")[["x_m", "y_m"]]
        smooth = by.rolling(s.smooth_steps, center=True, min_periods=1).mean()
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


def person_count(fused: pd.DataFrame) -> int:
    """Number of distinct people after fusion."""
    return int(fused["person"].nunique())


def step_seconds(fused: pd.DataFrame, cap_s: float) -> npt.NDArray[np.float64]:
    """Seconds each fused point stands for: time to the person's next point, capped."""
    nxt = fused.groupby("person")["t_ms"].shift(-1)
    dt = ((nxt - fused["t_ms"]) / 1000).to_numpy(dtype=float)
    return np.where(np.isnan(dt), 0.0, np.minimum(dt, cap_s))
