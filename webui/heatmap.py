"""The Heatmap page: person-time per floor cell over the plan, for a chosen window.

Stored cells are ``MetricSettings.heatmap_cell_m`` (25 cm) wide; the page merges
them into display cells so that the plan never draws more than ~2,500 of them.
A merged cell's ``people`` is the largest count of its cells and buckets: a lower
bound, so k-suppression errs towards hiding (as :func:`appliance.analytics.export.read_table`).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

from appliance.analytics.metrics import MetricSettings
from appliance.config import BoxConfig
from webui.auth import requires
from webui.blueprint import bp, page_status, render_page, scope
from webui.coverage_strip import coverage_strip
from webui.db import read_db
from webui.downloads import page_k
from webui.floorplan import plan_of

MAX_CELLS = 2500
LEVELS = 6  # colour classes h0..h5, each twice the one before


@dataclass(frozen=True)
class HeatCell:
    """A display cell: its corner and size in metres, and its colour class."""

    x: float
    y: float
    level: int


@dataclass(frozen=True)
class Heat:
    """The page's heatmap: cells, the legend's bounds, totals and what k hid."""

    cell_m: float
    cells: list[HeatCell]
    legend: list[tuple[int, float, float]]  # level, from, to (person-minutes per m²)
    person_minutes: float
    hidden: int


def merge_factor(config: BoxConfig, cell_m: float, max_cells: int = MAX_CELLS) -> int:
    """How many stored cells per display cell side keep the plan under ``max_cells``."""
    fp = config.floor_plan
    n = math.ceil(fp.width_m / cell_m) * math.ceil(fp.depth_m / cell_m)
    return max(1, math.ceil(math.sqrt(n / max_cells)))


def read_cells(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int, factor: int
) -> pd.DataFrame:
    """Display cells ``gx, gy, person_s, people`` of ``[t0, t1)`` (see module docs)."""
    return pd.read_sql_query(
        "SELECT cell_x / :f AS gx, cell_y / :f AS gy, sum(person_s) AS person_s, "
        "max(people) AS people FROM agg_heatmap "
        "WHERE store_id = :s AND bucket_ms >= :t0 AND bucket_ms < :t1 GROUP BY gx, gy",
        conn,
        params={"f": factor, "s": store_id, "t0": t0_ms, "t1": t1_ms},
    )


def build_heat(cells: pd.DataFrame, display_m: float, k: int) -> Heat:
    """Colour classes on a doubling scale from the busiest cell down; cells under k hidden."""
    hidden = int((cells["people"] < k).sum()) if k > 1 else 0
    shown = cells[cells["people"] >= k] if k > 1 else cells
    per_m2 = shown["person_s"].to_numpy(float) / 60 / (display_m * display_m)
    top = float(per_m2.max()) if len(per_m2) else 0.0
    bounds = [top / 2 ** (LEVELS - 1 - i) for i in range(LEVELS)]  # upper bound of each level
    levels = np.searchsorted(np.asarray(bounds), per_m2, side="left").clip(0, LEVELS - 1)
    legend = [(i, 0.0 if i == 0 else bounds[i - 1], bounds[i]) for i in range(LEVELS)]
    out = [
        HeatCell(round(gx * display_m, 3), round(gy * display_m, 3), int(lv))
        for gx, gy, lv in zip(
            shown["gx"].tolist(), shown["gy"].tolist(), levels.tolist(), strict=True
        )
    ]
    return Heat(
        display_m, out, legend if top > 0 else [], float(per_m2.sum() * display_m**2), hidden
    )


@bp.get("/heatmap")
@requires("view")
def heatmap() -> tuple[str, int]:
    """Where people spent their time, over the plan (window, k-suppression)."""
    s, k = page_k(scope("today"))
    base_m = MetricSettings().heatmap_cell_m
    factor = merge_factor(s.config, base_m)
    conn = read_db()
    w = s.window
    heat = build_heat(read_cells(conn, s.store_id, w.t0_ms, w.t1_ms, factor), base_m * factor, k)
    cov = coverage_strip(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms, s.tz)
    page = render_page(
        "heatmap.html", "heatmap_fragment.html",
        s=s, plan=plan_of(s.config), heat=heat, k=k, cov=cov,
    )  # fmt: skip
    return page, page_status(s)
