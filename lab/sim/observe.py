"""What each camera of a simulated store reports: anonymous track points with noise.

For each camera, the true position samples inside its field of view (and not
during an outage) become track points:

* a **track** is one stay of one person in the camera's view; a person back in
  view within ``track_keep_s`` keeps the track, an outage always ends it;
* each track gets a random positive 63-bit id, and a new one after each **id
  switch** (a Poisson process with mean ``id_switch_mean_s`` between switches);
* points are **missed** with ``miss_probability``: independently, or in bursts
  of mean ``miss_burst_s`` (a two-state Markov chain with the same miss share);
* kept points get gaussian **jitter** of ``jitter_sigma_m`` per axis.

Two cameras that see the same person report two different tracks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon

from lab.sim.scenario import CameraOutage, CameraView, Noise
from lab.sim.truth import Samples

log = logging.getLogger(__name__)

ID_HIGH = 2**63
"""Track ids are drawn uniformly from ``[1, 2**63)``: positive signed 64-bit integers."""


@dataclass(frozen=True, slots=True)
class Observations:
    """Per-camera track points and which person each track really was."""

    points: pd.DataFrame
    owners: pd.DataFrame


def _missed(n: int, noise: Noise, rng: np.random.Generator) -> np.ndarray:
    p = noise.miss_probability
    if p <= 0 or n == 0:
        return np.zeros(n, dtype=bool)
    burst = noise.miss_burst_s * noise.sample_rate_hz
    if burst <= 1.0:
        return rng.random(n) < p
    leave_miss = 1.0 / burst
    enter_miss = min(1.0, p * leave_miss / (1.0 - p))
    out = np.zeros(n, dtype=bool)
    missing = bool(rng.random() < p)
    i = 0
    while i < n:
        run = int(rng.geometric(leave_miss if missing else enter_miss))
        if missing:
            out[i : i + run] = True
        i += run
        missing = not missing
    return out


def _down(t_ms: np.ndarray, outages: Sequence[tuple[int, int]]) -> np.ndarray:
    down = np.zeros(len(t_ms), dtype=bool)
    for a, b in outages:
        down |= (t_ms >= a) & (t_ms < b)
    return down


def observe(
    s: Samples,
    cameras: Sequence[CameraView],
    outages: Sequence[CameraOutage],
    noise: Noise,
    start_ms: int,
    rng: np.random.Generator,
) -> Observations:
    """Turn true samples into what each camera would report.

    Args:
        s: the true samples, sorted by person then time.
        cameras: the cameras and their fields of view.
        outages: when cameras are down.
        noise: jitter, misses, id switches, track keeping.
        start_ms: UTC milliseconds of simulated time 0.
        rng: the noise random stream.

    Returns:
        ``points`` (``camera_id, track_id, t_ms, x_m, y_m``, sorted by ``t_ms``)
        and ``owners`` (``camera_id, track_id, person_id``).
    """
    keep_ticks = noise.track_keep_s * noise.sample_rate_hz
    frames: list[pd.DataFrame] = []
    owners: list[pd.DataFrame] = []
    for cam in cameras:
        fov = Polygon(cam.fov)
        shapely.prepare(fov)
        cam_out = [
            (start_ms + round(o.from_s * 1000), start_ms + round(o.to_s * 1000))
            for o in outages
            if o.camera == cam.id
        ]
        seen = shapely.contains_xy(fov, s.x, s.y) & ~_down(s.t_ms, cam_out)
        idx = np.nonzero(seen)[0]
        if len(idx) == 0:
            continue
        new_track = np.ones(len(idx), dtype=bool)
        gap = s.tick[idx[1:]] - s.tick[idx[:-1]]
        same_person = s.person[idx[1:]] == s.person[idx[:-1]]
        cont = same_person & (gap <= keep_ticks + 1 + 1e-9)
        for a, b in cam_out:
            cont &= ~((s.t_ms[idx[:-1]] < b) & (s.t_ms[idx[1:]] > a) & (gap > 1))
        new_track[1:] = ~cont
        track_no = np.cumsum(new_track) - 1
        bounds = [*np.flatnonzero(new_track).tolist(), len(idx)]
        ids = np.empty(len(idx), dtype=np.int64)
        missed = np.zeros(len(idx), dtype=bool)
        owner_rows: list[tuple[int, int]] = []
        for j in range(len(bounds) - 1):
            lo, hi = bounds[j], bounds[j + 1]
            t_rel = (s.t_ms[idx[lo:hi]] - s.t_ms[idx[lo]]) / 1000.0
            switches: list[float] = []
            if noise.id_switch_mean_s is not None:
                at = float(rng.exponential(noise.id_switch_mean_s))
                while at <= t_rel[-1]:
                    switches.append(at)
                    at += float(rng.exponential(noise.id_switch_mean_s))
            seg = np.searchsorted(np.asarray(switches, dtype=float), t_rel, side="right")
            seg_ids = rng.integers(1, ID_HIGH, size=len(switches) + 1, dtype=np.int64)
            ids[lo:hi] = seg_ids[seg]
            missed[lo:hi] = _missed(hi - lo, noise, rng)
            pid = int(s.person[idx[lo]])
            owner_rows += [(int(tid), pid) for tid in seg_ids]
        keep = idx[~missed]
        x = s.x[keep].copy()
        y = s.y[keep].copy()
        if noise.jitter_sigma_m > 0:
            x += rng.normal(0.0, noise.jitter_sigma_m, len(keep))
            y += rng.normal(0.0, noise.jitter_sigma_m, len(keep))
        frames.append(
            pd.DataFrame(
                {
                    "camera_id": cam.id,
                    "track_id": ids[~missed],
                    "t_ms": s.t_ms[keep],
                    "x_m": x,
                    "y_m": y,
                }
            )
        )
        owners.append(
            pd.DataFrame(
                {
                    "camera_id": cam.id,
                    "track_id": np.array([r[0] for r in owner_rows], dtype=np.int64),
                    "person_id": np.array([r[1] for r in owner_rows], dtype=np.int64),
                }
            )
        )
        log.debug(
            "camera %s: %d tracks, %d points (%d missed)",
            cam.id,
            int(track_no[-1]) + 1,
            len(keep),
            int(missed.sum()),
        )
    if frames:
        points = pd.concat(frames, ignore_index=True)
        points = points.sort_values(
            ["t_ms", "camera_id", "track_id"], kind="mergesort"
        ).reset_index(drop=True)
        owner_df = pd.concat(owners, ignore_index=True)
    else:
        points = pd.DataFrame(
            {
                "camera_id": pd.Series(dtype=object),
                "track_id": pd.Series(dtype=np.int64),
                "t_ms": pd.Series(dtype=np.int64),
                "x_m": pd.Series(dtype=np.float64),
                "y_m": pd.Series(dtype=np.float64),
            }
        )
        owner_df = pd.DataFrame(
            {
                "camera_id": pd.Series(dtype=object),
                "track_id": pd.Series(dtype=np.int64),
                "person_id": pd.Series(dtype=np.int64),
            }
        )
    return Observations(points, owner_df)
