"""``footfall bench analytics``: engine throughput, and one busy day recomputed.

1. Throughput: line counting + zone occupancy + heatmap over the same person
   points, ours (vectorised over the whole window, one core) against supervision's
   ``LineZone`` + ``PolygonZone`` as its users run them (one call per time step),
   in floor centimetres as the peer's "pixels".
2. A busy day: 8 cameras, 3,000 visitors over 12 opening hours, random-waypoint
   walks seen at 5 points/s by every camera whose field of view covers them (with
   overlaps), recomputed hour by hour with :func:`analyze_range`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from appliance.analytics.engine import analyze_range
from appliance.analytics.metrics import MetricSettings, heatmap, line_crossings, occupancy_series
from appliance.config import BoxConfig, parse_config
from local_db import connect, migrate

DAY_START_MS = 1_764_057_600_000  # 2025-11-25T08:00:00Z
FLOOR = (40.0, 25.0)
HZ = 5

BUSY_STORE = """
config_version: 1
store: {id: bench, name: Busy day, timezone: Europe/London}
floor_plan: {width_m: 40, depth_m: 25}
lines:
  - {id: door, a: [18, 24], b: [22, 24], in_side: left}
  - {id: aisle, a: [20, 5], b: [20, 20], in_side: left}
zones:
  - {id: front, kind: display, polygon: [[2, 2], [18, 2], [18, 12], [2, 12]]}
  - {id: back, kind: display, polygon: [[22, 2], [38, 2], [38, 12], [22, 12]]}
  - {id: queue, kind: queue, polygon: [[25, 15], [35, 15], [35, 20], [25, 20]]}
  - {id: till, kind: service_point, polygon: [[25, 20], [35, 20], [35, 23], [25, 23]]}
cameras:
"""


def _camera_yaml(i: int) -> str:
    x0, y0 = (i % 4) * 10.0, (i // 4) * 12.5
    cal = ", ".join(
        f"{{image: [{u}, {v}], floor: [{x0 + u / 40:.2f}, {y0 + v / 40:.2f}]}}"
        for u, v in ((0, 0), (640, 0), (640, 480), (0, 480))
    )
    return (
        f"  - {{id: cam{i}, source: sim:bench, fps: 10, resolution: [640, 480], "
        f"calibration: [{cal}]}}\n"
    )


def busy_config() -> BoxConfig:
    """The benchmark store: 40 x 25 m, 8 cameras, 2 lines, 4 zones."""
    return parse_config(BUSY_STORE + "".join(_camera_yaml(i) for i in range(8)))


def busy_day(visitors: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Per-camera observations of a busy day (see module docs)."""
    rng = np.random.default_rng(seed)
    frames = []
    arrivals = np.sort(rng.uniform(0, 12 * 3600, visitors))
    for person, t_arrive in enumerate(arrivals):
        stops = rng.integers(3, 9)
        pts = np.column_stack(
            [rng.uniform(1, FLOOR[0] - 1, stops), rng.uniform(1, FLOOR[1] - 4, stops)]
        )
        pts = np.vstack([[20, 24.8], pts, [20, 24.8]])
        seg = np.hypot(*np.diff(pts, axis=0).T) / 1.2 + rng.exponential(40, len(pts) - 1)
        t_way = t_arrive + np.concatenate([[0], np.cumsum(seg)])
        t = np.arange(t_way[0], t_way[-1], 1 / HZ)
        x, y = np.interp(t, t_way, pts[:, 0]), np.interp(t, t_way, pts[:, 1])
        # each camera sees a 12 x 14.5 m area: neighbours overlap by 2 m
        for cam in range(8):
            x0, y0 = (cam % 4) * 10.0 - 1, (cam // 4) * 12.5 - 1
            seen = (x >= x0) & (x < x0 + 12) & (y >= y0) & (y < y0 + 14.5)
            if seen.any():
                frames.append(
                    pd.DataFrame(
                        {
                            "camera_id": f"cam{cam}",
                            "track_id": person * 8 + cam,
                            "t_ms": DAY_START_MS + np.round(t[seen] * 1000).astype(np.int64),
                            "x_m": x[seen] + rng.normal(0, 0.05, seen.sum()),
                            "y_m": y[seen] + rng.normal(0, 0.05, seen.sum()),
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True).sort_values("t_ms", ignore_index=True)


def _people(points: pd.DataFrame) -> pd.DataFrame:
    return points.rename(columns={"track_id": "person"})[["person", "t_ms", "x_m", "y_m"]]


def ours_throughput(people: pd.DataFrame, config: BoxConfig) -> float:
    """Points per second for counting + occupancy + heatmap over one window."""
    s = MetricSettings()
    line, zone = config.lines[0], config.zones[0]
    start = time.perf_counter()
    line_crossings(people, line.id, line.a, line.b, line.in_side, s)
    occupancy_series(people, zone.polygon, int(people["t_ms"].min()), int(people["t_ms"].max()))
    heatmap(people, config.floor_plan.width_m, config.floor_plan.depth_m, s)
    return len(people) / (time.perf_counter() - start)


def peer_throughput(people: pd.DataFrame, config: BoxConfig) -> float:
    """Points per second for supervision's LineZone + PolygonZone, one call per time step."""
    import supervision as sv

    line, zone = config.lines[0], config.zones[0]
    cm = 100.0
    lz = sv.LineZone(
        sv.Point(line.a[0] * cm, line.a[1] * cm),
        sv.Point(line.b[0] * cm, line.b[1] * cm),
        triggering_anchors=[sv.Position.BOTTOM_CENTER],
    )
    pz = sv.PolygonZone(np.array([[x * cm, y * cm] for x, y in zone.polygon], dtype=np.int64))
    start = time.perf_counter()
    for _, step in people.groupby("t_ms", sort=True):
        x = step["x_m"].to_numpy() * cm
        y = step["y_m"].to_numpy() * cm
        dets = sv.Detections(
            xyxy=np.column_stack([x - 20, y - 170, x + 20, y]).astype(np.float32),
            tracker_id=step["person"].to_numpy(),
            class_id=np.zeros(len(step), int),
        )
        lz.trigger(dets)
        pz.trigger(dets)
    return len(people) / (time.perf_counter() - start)


def bench_analytics(visitors: int = 3000, throughput_points: int = 1_000_000) -> dict[str, Any]:
    """Run both parts and return the JSON-ready summary."""
    config = busy_config()
    t = time.perf_counter()
    points = busy_day(visitors)
    generate_s = time.perf_counter() - t
    people = _people(points[points["camera_id"] == "cam0"]).head(throughput_points)
    ours = ours_throughput(people, config)
    peer_sample = people[people["t_ms"] < people["t_ms"].min() + 3_600_000]
    peer = peer_throughput(peer_sample, config)
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "day.db")
        migrate(conn)
        columns = [points[c].tolist() for c in ("camera_id", "track_id", "t_ms", "x_m", "y_m")]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO track_points VALUES (?, ?, ?, ?, ?, 1.0)", zip(*columns, strict=True)
        )
        conn.execute("COMMIT")
        t = time.perf_counter()
        for hour in range(13):
            start = DAY_START_MS + hour * 3_600_000
            analyze_range(conn, config, start, start + 3_600_000)
        day_s = time.perf_counter() - t
        ins = conn.execute(
            "SELECT sum(count) FROM agg_footfall WHERE line_id = 'door' AND direction = 'in'"
        ).fetchone()[0]
        conn.close()
    return {
        "ours_points_per_s": round(ours),
        "peer_points_per_s": round(peer),
        "ratio": round(ours / peer, 1),
        "throughput_points": len(people),
        "peer_points": len(peer_sample),
        "day_points": len(points),
        "day_visitors": visitors,
        "day_cameras": 8,
        "day_recompute_s": round(day_s, 1),
        "day_door_ins": ins,
        "generate_s": round(generate_s, 1),
        "cores": os.cpu_count(),
    }
