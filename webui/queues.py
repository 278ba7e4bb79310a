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

from appliance.analytics.rollups import Period
from webui.auth import requires
from webui.blueprint import bp, page_status, render_page, scope
from webui.charts import align, chart, series
from webui.coverage import bucket_status, by_period, keys_of, summarise
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


def read_queue(conn: sqlite3.Connection, store_id: str, t0_ms: int, t1_ms: int) -> pd.DataFrame:
    """The window's ``agg_queue`` rows."""
    return pd.read_sql_query(
        "SELECT bucket_ms, zone_id, joined, served, abandoned, wait_total_s, p90_wait_s, "
        "mean_len, max_len, predicted_mae_s FROM agg_queue "
        "WHERE store_id = ? AND bucket_ms >= ? AND bucket_ms < ?",
        conn,
        params=(store_id, t0_ms, t1_ms),
    )


def combine(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sum counts, average lengths, take the worst p90, weight the prediction error by served."""
    weighted = rows.assign(
        mae_w=rows["predicted_mae_s"] * rows["served"],
        mae_n=rows["served"].where(rows["predicted_mae_s"].notna(), 0),
    )
    out = weighted.groupby(by).agg(
        joined=("joined", "sum"),
        served=("served", "sum"),
        abandoned=("abandoned", "sum"),
        wait_total_s=("wait_total_s", "sum"),
        p90_wait_s=("p90_wait_s", "max"),
        mean_len=("mean_len", "mean"),
        max_len=("max_len", "max"),
        mae_w=("mae_w", "sum"),
        mae_n=("mae_n", "sum"),
    )
    out["mean_wait_s"] = out["wait_total_s"] / out["served"].where(out["served"] > 0)
    out["mae_s"] = out["mae_w"] / out["mae_n"].where(out["mae_n"] > 0)
    return out


def _opt(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def totals(rows: pd.DataFrame, zone_ids: list[str]) -> list[QueueTotals]:
    """Per queue zone, the window's totals (zones without rows show zeros)."""
    combined = combine(rows, ["zone_id"]) if len(rows) else pd.DataFrame()
    out = []
    for zid in zone_ids:
        if zid not in combined.index:
            out.append(QueueTotals(zid, 0, 0, 0, None, None, None))
            continue
        r = combined.loc[zid]
        out.append(
            QueueTotals(
                zid, int(r["joined"]), int(r["served"]), int(r["abandoned"]),
                _opt(r["mean_wait_s"]), _opt(r["p90_wait_s"]), _opt(r["mae_s"]),
            )
        )  # fmt: skip
    return out


def series_table(
    rows: pd.DataFrame, zone_ids: list[str], cov: pd.DataFrame, period: Period | None, tz: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The length and wait charts, and the table behind them."""
    shown = cov[cov["status"] != "future"]
    keys, status = shown.index, shown["status"]
    per = (
        combine(rows.assign(key=keys_of(rows["bucket_ms"], period, tz)), ["key", "zone_id"])
        if len(rows)
        else pd.DataFrame(columns=["mean_len", "mean_wait_s", "mae_s"])
    )

    present = set(per.index.get_level_values(-1)) if len(per) else set()

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
    table = []
    for i, key in enumerate(x):
        cells = [(lengths[j]["values"][i], waits[j]["values"][i]) for j in range(len(zone_ids))]
        table.append(
            {
                "label": key_label(int(key), period, tz),
                "status": st[i],
                "coverage": float(shown["coverage"].iloc[i]),
                "cells": cells,
            }
        )
    return charts, table


@bp.get("/queues")
@requires("view")
def queues() -> tuple[str, int]:
    """Queue lengths, waits and abandonment per queue zone."""
    s = scope("today")
    w = s.window
    conn = read_db()
    zone_ids = [z.id for z in s.config.zones if z.kind == "queue"]
    rows = read_queue(conn, s.store_id, w.t0_ms, w.t1_ms)
    period = resolution(w.t0_ms, w.t1_ms)
    buckets = bucket_status(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms)
    charts, table = series_table(rows, zone_ids, by_period(buckets, period, s.tz), period, s.tz)
    page = render_page(
        "queues.html", "queues_fragment.html",
        s=s, zone_ids=zone_ids, totals=totals(rows, zone_ids), charts=charts,
        table=table, period=period, cov=summarise(buckets, s.tz),
    )  # fmt: skip
    return page, page_status(s)
