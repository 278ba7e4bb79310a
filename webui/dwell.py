"""The Dwell page: per zone, visits, mean dwell, p50/p90 and the dwell histogram.

Each 5-minute row holds its visits' exact percentiles and a histogram over
:data:`appliance.analytics.engine.DWELL_BINS_S`. Over one bucket the page shows the
stored percentiles; over several it adds the histograms and interpolates within
the bin (marked ≈), since percentiles of different buckets do not combine.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

from appliance.analytics.engine import DWELL_BINS_S
from webui.auth import requires
from webui.blueprint import bp, page_status, render_page, scope
from webui.coverage import bucket_status, summarise
from webui.db import read_db

N_BINS = len(DWELL_BINS_S)  # the last bin is open: DWELL_BINS_S[-1] s and longer


def _duration(s: float) -> str:
    return f"{s:g} s" if s < 60 else f"{s / 60:g} min"


#: "0–10 s", …, "30 min+"
BIN_LABELS = [
    f"{_duration(lo)}–{_duration(hi)}" if i < N_BINS - 1 else f"{_duration(lo)}+"
    for i, (lo, hi) in enumerate(zip(DWELL_BINS_S, (*DWELL_BINS_S[1:], np.inf), strict=True))
]


@dataclass(frozen=True)
class ZoneDwell:
    """One zone's dwell over the window."""

    zone_id: str
    kind: str
    visits: int
    mean_s: float | None
    p50_s: float | None
    p90_s: float | None
    exact: bool  # stored percentiles (one bucket) rather than interpolated
    hist: list[int]

    @property
    def hist_max(self) -> int:
        """The tallest bar (at least 1, for scaling)."""
        return max([1, *self.hist])


def hist_percentile(hist: np.ndarray, q: float) -> float | None:
    """The q-quantile (0..1) of a histogram over DWELL_BINS_S, linear within its bin.

    In the open last bin the bin's lower edge is returned (a lower bound).
    """
    total = float(hist.sum())
    if total <= 0:
        return None
    cum = np.cumsum(hist)
    i = int(np.searchsorted(cum, q * total, side="left"))
    if i >= N_BINS - 1:
        return float(DWELL_BINS_S[-1])
    lo, hi = DWELL_BINS_S[i], DWELL_BINS_S[i + 1]
    before = float(cum[i - 1]) if i > 0 else 0.0
    return lo + (hi - lo) * (q * total - before) / float(hist[i])


def read_dwell(conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int) -> pd.DataFrame:
    """The window's ``agg_dwell`` rows."""
    return pd.read_sql_query(
        "SELECT zone_id, bucket_ms, visits, total_s, p50_s, p90_s, hist FROM agg_dwell "
        "WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms",
        conn,
        params=(store_id, t0_ms, t1_ms),
    )


def zone_dwell(rows: pd.DataFrame, zone_id: str, kind: str) -> ZoneDwell:
    """Combine one zone's rows (see module docs)."""
    mine = rows[rows["zone_id"] == zone_id]
    visits = int(mine["visits"].sum())
    hist = np.zeros(N_BINS, np.int64)
    for text in mine["hist"]:
        hist += np.asarray(json.loads(text), np.int64)[:N_BINS]
    mean = float(mine["total_s"].sum()) / visits if visits else None
    if len(mine) == 1:
        row = mine.iloc[0]
        p50, p90 = row["p50_s"], row["p90_s"]
        return ZoneDwell(
            zone_id, kind, visits, mean,
            None if pd.isna(p50) else float(p50), None if pd.isna(p90) else float(p90),
            True, hist.tolist(),
        )  # fmt: skip
    return ZoneDwell(
        zone_id, kind, visits, mean,
        hist_percentile(hist, 0.5), hist_percentile(hist, 0.9), False, hist.tolist(),
    )  # fmt: skip


@bp.get("/dwell")
@requires("view")
def dwell() -> tuple[str, int]:
    """How long visits to each zone last."""
    s = scope("today")
    w = s.window
    conn = read_db()
    rows = read_dwell(conn, s.store_id, w.t0_ms, w.t1_ms)
    zones = [zone_dwell(rows, z.id, z.kind) for z in s.config.zones if z.kind != "staff_only"]
    cov = summarise(bucket_status(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms), s.tz)
    page = render_page(
        "dwell.html", "dwell_fragment.html", s=s, zones=zones, bins=BIN_LABELS, cov=cov
    )
    return page, page_status(s)
