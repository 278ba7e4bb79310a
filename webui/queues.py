"""The Queues page: length over time, measured wait and the prediction's error, abandonment.

The aggregates keep, per queue zone and bucket, the measured waits and the mean
absolute error of the predicted wait (``predicted_mae_s``): the page charts the
measured mean wait with that error beside it. Longer windows step by hour or day.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import pandas as pd

from appliance.analytics.coverage import coverage_by_period
from appliance.analytics.rollups import Period, period_bounds
from local_db.aggregates import Bounds, queue_per_period
from webui.auth import requires
from webui.blueprint import bp, page_status, render_page, scope
from webui.charts import align, chart, series
from webui.coverage_strip import coverage_strip
from webui.db import read_db
from webui.periods import key_label, resolution


@dataclass(frozen=True)
class QueueTotals:
    """One queue zone over the whole window."""

    zone_id: str
    joined: int
    served: int
    abandoned: int
    mean_wait_s: float | None
    worst_p90_s: float | None
    mae_s: float | None

    @property
    def abandon_pct(self) -> float | None:
        """Abandoned as a share of those who joined."""
        return 100 * self.abandoned / self.joined if self.joined else None


def read_queue(conn: sqlite3.Connection, store_id: str, bounds: Bounds) -> pd.DataFrame:
    """Queue rows combined per period and zone (index ``key, zone_id``), with mean wait and MAE."""
    df = queue_per_period(conn, store_id, bounds)
    return _derived(df).set_index(["key", "zone_id"])


def _derived(df: pd.DataFrame) -> pd.DataFrame:
    df["mean_wait_s"] = df["wait_total_s"] / df["served"].where(df["served"] > 0)
    df["mae_s"] = df["mae_w"] / df["mae_n"].where(df["mae_n"] > 0)
    return df


def whole_window(per: pd.DataFrame) -> pd.DataFrame:
    """The per-period sums combined over the whole window, per zone."""
    if per.empty:
        return pd.DataFrame(columns=per.columns)
    grouped = per.assign(len_w=per["mean_len"] * per["n"]).groupby(level="zone_id")
    added = ["joined", "served", "abandoned", "wait_total_s", "mae_w", "mae_n", "len_w", "n"]
    out = grouped[added].sum()
    out["p90_wait_s"] = grouped["p90_wait_s"].max()
    out["max_len"] = grouped["max_len"].max()
    out["mean_len"] = out["len_w"] / out["n"]
    return _derived(out)


def _opt(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def totals(by_zone: pd.DataFrame, zone_ids: list[str]) -> list[QueueTotals]:
    """Per queue zone, the window's totals (zones without rows show zeros)."""
    out = []
    for zid in zone_ids:
        if zid not in by_zone.index:
            out.append(QueueTotals(zid, 0, 0, 0, None, None, None))
            continue
        r = by_zone.loc[zid]
        out.append(
            QueueTotals(
                zid, int(r["joined"]), int(r["served"]), int(r["abandoned"]),
                _opt(r["mean_wait_s"]), _opt(r["p90_wait_s"]), _opt(r["mae_s"]),
            )
        )  # fmt: skip
    return out


def series_table(
    per: pd.DataFrame, zone_ids: list[str], cov: pd.DataFrame, period: Period | None, tz: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The length and wait charts, and the table behind them."""
    shown = cov[cov["status"] != "future"]
    keys, status = shown.index, shown["status"]
    present = set(per.index.get_level_values("zone_id")) if len(per) else set()

    def column(zid: str, name: str) -> list[Any]:
        values = per.xs(zid, level="zone_id")[name] if zid in present else pd.Series(dtype=float)
        return align(values, keys, status, None)

    lengths = [series(z, column(z, "mean_len"), i) for i, z in enumerate(zone_ids)]
    waits = [series(f"{z} wait", column(z, "mean_wait_s"), i) for i, z in enumerate(zone_ids)]
    waits += [
        series(f"{z} prediction error", column(z, "mae_s"), i, dash=True)
        for i, z in enumerate(zone_ids)
    ]
    x = keys.to_list()
    st = status.to_list()
    charts = [
        chart("queue-length", "Queue length (mean people)", x, lengths, st, tz, "people"),
        chart("queue-wait", "Measured wait and prediction error", x, waits, st, tz, "seconds"),
    ]
    coverage = shown["coverage"].to_list()
    table = [
        {
            "label": key_label(int(key), period, tz),
            "status": st[i],
            "coverage": coverage[i],
            "cells": [
                (lengths[j]["values"][i], waits[j]["values"][i]) for j in range(len(zone_ids))
            ],
        }
        for i, key in enumerate(x)
    ]
    return charts, table


@bp.get("/queues")
@requires("view")
def queues() -> tuple[str, int]:
    """Queue lengths, waits and abandonment per queue zone."""
    s = scope("today")
    w = s.window
    conn = read_db()
    zone_ids = [z.id for z in s.config.zones if z.kind == "queue"]
    period = resolution(w.t0_ms, w.t1_ms)
    per = read_queue(conn, s.store_id, period_bounds(w.t0_ms, w.t1_ms, period, s.tz))
    cov = coverage_by_period(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms, period, s.tz)
    charts, table = series_table(per, zone_ids, cov, period, s.tz)
    strip = coverage_strip(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms, s.tz)
    page = render_page(
        "queues.html", "queues_fragment.html",
        s=s, zone_ids=zone_ids, totals=totals(whole_window(per), zone_ids), charts=charts,
        table=table, period=period, cov=strip,
    )  # fmt: skip
    return page, page_status(s)
