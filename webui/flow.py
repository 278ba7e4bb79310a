"""The Flow page: the zone-to-zone transition matrix and the entrance → display → checkout funnel.

Matrix cells are shaded by their share of the row (where people went next from a
zone); with k, cells counting fewer than k moves are hidden (as ``footfall export``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pandas as pd

from appliance.analytics.engine import FUNNEL_STEPS
from webui.auth import requires
from webui.blueprint import bp, page_status, render_page, scope
from webui.coverage_strip import coverage_strip
from webui.db import read_db
from webui.downloads import page_k


@dataclass(frozen=True)
class MatrixCell:
    """One from → to cell: its count (None when k hid it) and its share of the row."""

    count: int | None
    share: float


@dataclass(frozen=True)
class Matrix:
    """The transition matrix: zone ids in config order, rows of cells, row totals."""

    zones: list[str]
    rows: list[tuple[str, list[MatrixCell], int]]
    hidden: int


@dataclass(frozen=True)
class FunnelStep:
    """People reaching one step, and the conversion from the first and the previous step."""

    step: int
    kind: str
    people: int
    of_first_pct: float | None
    of_previous_pct: float | None


def read_transitions(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int
) -> pd.DataFrame:
    """``from_zone, to_zone, count`` summed over the window."""
    return pd.read_sql_query(
        "SELECT from_zone, to_zone, sum(count) AS count FROM agg_transitions "
        "WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ? GROUP BY 1, 2",
        conn,
        params=(store_id, t0_ms, t1_ms),
    )


def matrix(pairs: pd.DataFrame, zone_order: list[str], k: int) -> Matrix:
    """Rows and columns in config order (then any other zone that appears)."""
    seen = set(pairs["from_zone"]) | set(pairs["to_zone"])
    zones = [z for z in zone_order if z in seen] + sorted(seen - set(zone_order))
    counts = {(f, t): int(c) for f, t, c in pairs.itertuples(index=False, name=None)}
    hidden = 0
    rows = []
    for f in zones:
        total = sum(counts.get((f, t), 0) for t in zones)
        cells = []
        for t in zones:
            c = counts.get((f, t), 0)
            if 0 < c < k:
                hidden += 1
                cells.append(MatrixCell(None, 0.0))
            else:
                cells.append(MatrixCell(c, c / total if total else 0.0))
        rows.append((f, cells, total))
    return Matrix(zones, rows, hidden)


def read_funnel(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int
) -> list[FunnelStep]:
    """The funnel summed over the window, with conversion percentages."""
    rows = conn.execute(
        "SELECT step, sum(people) FROM agg_funnel "
        "WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ? GROUP BY 1",
        (store_id, t0_ms, t1_ms),
    ).fetchall()
    people = {int(step): int(n) for step, n in rows}
    steps: list[FunnelStep] = []
    for step, kind in enumerate(("in", *FUNNEL_STEPS)):
        n = people.get(step, 0)
        first = steps[0].people if steps else n
        prev = steps[-1].people if steps else n
        steps.append(
            FunnelStep(
                step, kind, n,
                100 * n / first if first else None,
                100 * n / prev if prev else None,
            )
        )  # fmt: skip
    return steps


@bp.get("/flow")
@requires("view")
def flow() -> tuple[str, int]:
    """Where people go next, and how many reach a display and a checkout."""
    s, k = page_k(scope("today"))
    w = s.window
    conn = read_db()
    order = [z.id for z in s.config.zones]
    m = matrix(read_transitions(conn, s.store_id, w.t0_ms, w.t1_ms), order, k)
    steps = read_funnel(conn, s.store_id, w.t0_ms, w.t1_ms)
    cov = coverage_strip(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms, s.tz)
    page = render_page("flow.html", "flow_fragment.html", s=s, matrix=m, funnel=steps, k=k, cov=cov)
    return page, page_status(s)
