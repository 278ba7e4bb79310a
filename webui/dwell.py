"""The Dwell page: per zone, visits, mean dwell, p50/p90 and the dwell histogram.

Each 5-minute row holds its visits' exact percentiles and a histogram over
:data:`appliance.analytics.engine.DWELL_BINS_S`. Over one bucket the page shows the
stored percentiles; over several it adds the histograms and interpolates within
the bin (marked ≈), since percentiles of different buckets do not combine.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace

import numpy as np

from appliance.analytics.engine import DWELL_BINS_S
from webui.auth import requires
from webui.blueprint import bp, page_status, render_page, scope
from webui.coverage_strip import coverage_strip
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


def read_dwell(
    conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int
) -> dict[str, ZoneDwell]:
    """Per zone with rows in ``[t0, t1)``: visits, mean, percentiles and the summed histogram.

    The histograms are added by SQLite (``json_each``), not decoded row by row.
    """
    where = "store_id = ? AND bucket_ms >= ? AND bucket_ms < ?"
    params = (store_id, t0_ms, t1_ms)
    hists: dict[str, np.ndarray] = {}
    for zone, i, n in conn.execute(
        f"SELECT d.zone_id, CAST(j.key AS INTEGER), sum(j.value) "
        f"FROM agg_dwell d, json_each(d.hist) j WHERE {where} GROUP BY 1, 2",
        params,
    ):
        if i < N_BINS:
            hists.setdefault(zone, np.zeros(N_BINS, np.int64))[i] = n
    out = {}
    for zone, visits, total, rows, p50, p90 in conn.execute(
        f"SELECT zone_id, sum(visits), sum(total_s), count(*), max(p50_s), max(p90_s) "
        f"FROM agg_dwell WHERE {where} GROUP BY 1",
        params,
    ):
        hist = hists.get(zone, np.zeros(N_BINS, np.int64))
        exact = rows == 1  # one bucket: its stored percentiles
        out[zone] = ZoneDwell(
            zone, "", int(visits), total / visits if visits else None,
            p50 if exact else hist_percentile(hist, 0.5),
            p90 if exact else hist_percentile(hist, 0.9),
            exact, hist.tolist(),
        )  # fmt: skip
    return out


def zone_dwell(found: dict[str, ZoneDwell], zone_id: str, kind: str) -> ZoneDwell:
    """One zone's dwell (zeros when it had no rows)."""
    z = found.get(zone_id)
    if z is None:
        return ZoneDwell(zone_id, kind, 0, None, None, None, True, [0] * N_BINS)
    return replace(z, kind=kind)


@bp.get("/dwell")
@requires("view")
def dwell() -> tuple[str, int]:
    """How long visits to each zone last."""
    s = scope("today")
    w = s.window
    conn = read_db()
    found = read_dwell(conn, s.store_id, w.t0_ms, w.t1_ms)
    zones = [zone_dwell(found, z.id, z.kind) for z in s.config.zones if z.kind != "staff_only"]
    cov = coverage_strip(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms, s.tz)
    page = render_page(
        "dwell.html", "dwell_fragment.html", s=s, zones=zones, bins=BIN_LABELS, cov=cov
    )
    return page, page_status(s)
