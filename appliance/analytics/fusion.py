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
        stitch_gap_s: a track starting this soon after another ended may continue it.
        stitch_radius_m: ... and this close to where it ended (plus walking speed x gap).
    """

    step_ms: int = 100
    radius_m: float = 0.8
    min_overlap_share: float = 0.6
    min_overlap_steps: int = 5
    stitch_gap_s: float = 1.5
    stitch_radius_m: float = 0.6
    walk_speed_mps: float = 1.6


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


def _overlap_links(pts: pd.DataFrame, settings: FusionSettings) -> list[tuple[int, int]]:
    """Pairs of track indices (different cameras) that are one person seen twice."""
    if pts["camera_id"].nunique() < 2:
        return []
    # One KD-tree over (x, y, step * big): pairs can only fall in the same step.
    big = 1e6
    coords = np.column_stack([pts["x_m"], pts["y_m"], pts["step"].to_numpy() * big])
    pairs = cKDTree(coords).query_pairs(settings.radius_m, output_type="ndarray")
    if len(pairs) == 0:
        return []
    tix = pts["tix"].to_numpy()
    cam = pts["cam_code"].to_numpy()
    a, b = tix[pairs[:, 0]], tix[pairs[:, 1]]
    keep = cam[pairs[:, 0]] != cam[pairs[:, 1]]
    a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    close = pd.DataFrame({"a": a, "b": b}).drop_duplicates().value_counts()
    if close.empty:
        return []
    # steps in which both tracks exist
    steps = pts[["tix", "step"]].drop_duplicates()
    cand = close.reset_index()[["a", "b"]]
    both = (
        cand.merge(steps.rename(columns={"tix": "a"}), on="a")
        .merge(steps.rename(columns={"tix": "b"}), on=["b", "step"])
        .groupby(["a", "b"])
        .size()
    )
    close_steps = (
        pd.DataFrame({"a": a, "b": b, "step": pts["step"].to_numpy()[pairs[keep, 0]]})
        .drop_duplicates()
        .groupby(["a", "b"])
        .size()
    )
    share = (close_steps / both.reindex(close_steps.index)).fillna(0)
    ok = (share >= settings.min_overlap_share) & (close_steps >= settings.min_overlap_steps)
    return [(int(x), int(y)) for x, y in close_steps[ok].index]


def _stitch_links(tracks: pd.DataFrame, settings: FusionSettings) -> list[tuple[int, int]]:
    """Pairs (ended track, started track) where one continues the other."""
    if len(tracks) < 2:
        return []
    ends = tracks[["tix", "t_end", "x_end", "y_end"]].sort_values("t_end")
    starts = tracks[["tix", "t_start", "x_start", "y_start"]].sort_values("t_start")
    gap_ms = round(settings.stitch_gap_s * 1000)
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
    ok = (dist <= settings.stitch_radius_m + settings.walk_speed_mps * gap_s) & (
        cand["prev"] != cand["tix"]
    )
    return [
        (int(p), int(t)) for p, t in zip(cand.loc[ok, "prev"], cand.loc[ok, "tix"], strict=True)
    ]


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
    pts = points[POINT_COLUMNS].copy()
    keys = pts["camera_id"].astype(str) + "\x00" + pts["track_id"].astype(str)
    pts["tix"], _ = pd.factorize(keys)
    pts["cam_code"], _ = pd.factorize(pts["camera_id"])
    pts["step"] = (pts["t_ms"] // s.step_ms).astype(np.int64)
    g = pts.sort_values("t_ms").groupby("tix")
    tracks = pd.DataFrame(
        {
            "t_start": g["t_ms"].first(),
            "x_start": g["x_m"].first(),
            "y_start": g["y_m"].first(),
            "t_end": g["t_ms"].last(),
            "x_end": g["x_m"].last(),
            "y_end": g["y_m"].last(),
        }
    ).reset_index()
    uf = _UnionFind(len(tracks))
    for a, b in _overlap_links(pts, s) + _stitch_links(tracks, s):
        uf.union(a, b)
    roots = np.fromiter((uf.find(i) for i in range(len(tracks))), np.int64, len(tracks))
    person, _ = pd.factorize(roots)
    pts["person"] = person[pts["tix"].to_numpy()]
    fused = pts.groupby(["person", "step"], sort=True)[["x_m", "y_m"]].mean().reset_index()
    fused["t_ms"] = fused["step"] * s.step_ms
    return fused[["person", "t_ms", "x_m", "y_m"]]


def person_count(fused: pd.DataFrame) -> int:
    """Number of distinct people after fusion."""
    return int(fused["person"].nunique())


def step_seconds(fused: pd.DataFrame, cap_s: float) -> npt.NDArray[np.float64]:
    """Seconds each fused point stands for: time to the person's next point, capped."""
    nxt = fused.groupby("person")["t_ms"].shift(-1)
    dt = ((nxt - fused["t_ms"]) / 1000).to_numpy(dtype=float)
    return np.where(np.isnan(dt), 0.0, np.minimum(dt, cap_s))
