"""``python -m lab.summary DB``: what a run left in the database, in a few lines."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from local_db import camera_events, connect


def summarize(db_path: str) -> str:
    """Rows, tracks, time span and camera states recorded in a footfall database."""
    conn = connect(db_path, readonly=True)
    try:
        n, tracks, t0, t1 = conn.execute(
            "SELECT count(*), count(DISTINCT track_id), min(t_ms), max(t_ms) FROM track_points"
        ).fetchone()
        x0, x1, y0, y1 = conn.execute(
            "SELECT min(x_m), max(x_m), min(y_m), max(y_m) FROM track_points"
        ).fetchone()
        events = camera_events(conn)
        footfall = conn.execute(
            "SELECT line_id, direction, sum(count) FROM agg_footfall GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        dwell = conn.execute(
            "SELECT zone_id, sum(visits), max(p50_s) FROM agg_dwell GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()
    if not n:
        return f"{db_path}: no track points"

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")

    lines = [
        f"{db_path}: {n} track points, {tracks} anonymous tracks, {iso(t0)} → {iso(t1)}",
        f"  floor extent: x {x0:.1f}–{x1:.1f} m, y {y0:.1f}–{y1:.1f} m",
    ]
    lines += [f"  camera {cam} {state} at {iso(t)} ({detail})" for cam, t, state, detail in events]
    lines += [f"  footfall {line} {direction}: {n}" for line, direction, n in footfall]
    lines += [f"  zone {z}: {n} visits, dwell p50 {p50:.0f} s" for z, n, p50 in dwell]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m lab.summary DB")
    print(summarize(sys.argv[1]))
