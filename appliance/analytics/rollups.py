"""5-minute buckets → hour, day, ISO week and month in the store's time zone.

Periods start at local midnight (or the local hour), so a DST day has 23 or 25
hours and the week starts on the local Monday; keys stay UTC milliseconds of the
period's local start, as every stored time is UTC.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

Period = Literal["hour", "day", "week", "month"]
PERIODS: tuple[Period, ...] = ("hour", "day", "week", "month")

#: How each aggregate table's value columns combine over buckets.
ADDITIVE = {
    "agg_footfall": (["line_id", "direction"], {"count": "sum"}),
    "agg_transitions": (["from_zone", "to_zone"], {"count": "sum"}),
    # distinct people do not add up over buckets: the max is a lower bound, which
    # errs towards suppressing a cell (privacy) rather than showing it
    "agg_heatmap": (["cell_x", "cell_y"], {"person_s": "sum", "people": "max"}),
    "agg_occupancy": (["zone_id"], {"mean": "mean", "max": "max"}),
    "agg_queue": (
        ["zone_id"],
        {
            "joined": "sum",
            "served": "sum",
            "abandoned": "sum",
            "wait_total_s": "sum",
            "max_len": "max",
        },
    ),
    "agg_dwell": (["zone_id"], {"visits": "sum", "total_s": "sum"}),
    "agg_funnel": (["step", "kind"], {"people": "sum"}),
}


def period_start(bucket_ms: pd.Series, period: Period, tz: str) -> pd.Series:
    """UTC milliseconds of the local start of the period each bucket falls in."""
    local = pd.to_datetime(bucket_ms, unit="ms", utc=True).dt.tz_convert(tz).dt.tz_localize(None)
    if period == "hour":
        # the time since the local hour began, taken off the UTC instant (DST-safe,
        # and right for zones whose offset is not a whole hour)
        since = (local - local.dt.floor("h")) // pd.Timedelta(milliseconds=1)
        return (bucket_ms - since).astype("int64")
    day = local.dt.normalize()
    if period == "week":
        day = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    elif period == "month":
        day = day.dt.to_period("M").dt.start_time
    start = day.dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    epoch = pd.Timestamp(0, tz="UTC")
    return ((start - epoch) // pd.Timedelta(milliseconds=1)).astype("int64")


def rollup(df: pd.DataFrame, table: str, period: Period, tz: str) -> pd.DataFrame:
    """Combine a table's 5-minute rows into periods (sums, means of means, maxima).

    Args:
        df: rows of ``table`` with ``store_id`` and ``bucket_ms``.
        table: which aggregate table (its value columns decide how rows combine).
        period: hour, day, week or month.
        tz: the store's IANA time zone.
    """
    dims, how = ADDITIVE[table]
    if df.empty:
        return pd.DataFrame(columns=["store_id", "bucket_ms", *dims, *how])
    keyed = df.assign(bucket_ms=period_start(df["bucket_ms"], period, tz))
    out = keyed.groupby(["store_id", "bucket_ms", *dims], as_index=False).agg(how)
    if table == "agg_queue":
        out["mean_wait_s"] = out["wait_total_s"] / out["served"].where(out["served"] > 0)
    if table == "agg_dwell":
        out["mean_s"] = out["total_s"] / out["visits"].where(out["visits"] > 0)
    return out
