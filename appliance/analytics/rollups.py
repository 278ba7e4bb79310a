"""5-minute buckets → hour, day, ISO week and month in the store's time zone.

Periods start at local midnight (or the local hour), so a DST day has 23 or 25
hours and the week starts on the local Monday; keys stay UTC milliseconds of the
period's local start, as every stored time is UTC. :func:`period_start` is the one
keying: :func:`rollup` (the export), :func:`period_bounds` (the dashboard's sums per
period, see :mod:`local_db.aggregates`) and :mod:`appliance.analytics.coverage` use it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from appliance.analytics.engine import BUCKET_MS
from local_db.aggregates import Bounds

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


def bucket_grid(t0_ms: int, t1_ms: int) -> pd.Series:
    """The starts (UTC ms) of the 5-minute buckets covering ``[t0, t1)``, oldest first."""
    return pd.Series(np.arange(t0_ms - t0_ms % BUCKET_MS, t1_ms, BUCKET_MS, dtype=np.int64))


def period_start(bucket_ms: pd.Series, period: Period | None, tz: str) -> pd.Series:
    """Each bucket's key: the UTC ms of the local start of its period (None: the bucket itself).

    The one way buckets are keyed into local periods: by the export's rollups, the
    dashboard's period sums and the coverage per period. An hour's start is the UTC
    instant less the time since the local hour began (DST-safe, and right for zones
    whose offset is not a whole hour). Days, weeks and months are found among the few
    local period starts of the range, each localised once, rather than by converting
    every bucket.

    Args:
        bucket_ms: bucket starts (UTC ms).
        period: hour, day, week (from the local Monday) or month; None keeps the buckets.
        tz: the store's IANA time zone.

    Returns:
        The keys, with ``bucket_ms``'s index and name.
    """
    if period is None or bucket_ms.empty:
        return bucket_ms
    if period == "hour":
        local = pd.to_datetime(bucket_ms, unit="ms", utc=True).dt.tz_convert(tz)
        local = local.dt.tz_localize(None)
        since = (local - local.dt.floor("h")) // pd.Timedelta(milliseconds=1)
        return (bucket_ms - since).astype("int64")
    first = pd.Timestamp(int(bucket_ms.min()), unit="ms", tz="UTC").tz_convert(tz)
    last = pd.Timestamp(int(bucket_ms.max()), unit="ms", tz="UTC").tz_convert(tz)
    days = pd.date_range(
        first.tz_localize(None).normalize() - pd.Timedelta(days=31),
        last.tz_localize(None).normalize(),
        freq="D",
    )
    if period == "week":
        days = days[days.day_of_week == 0]
    elif period == "month":
        days = days[days.day == 1]
    starts = days.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    edges = np.asarray((starts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1))
    edges = edges.astype(np.int64)
    at = np.searchsorted(edges, bucket_ms.to_numpy(np.int64), side="right") - 1
    return pd.Series(edges[at], index=bucket_ms.index, name=bucket_ms.name)


def period_bounds(t0_ms: int, t1_ms: int, period: Period | None, tz: str) -> Bounds:
    """``[(key, start, end), …]`` of the buckets or local periods that ``[t0, t1)`` covers.

    Each period's buckets are those :func:`period_start` keys to it: ``key`` is the
    period's local start, ``[start, end)`` its buckets within the window. The first
    starts at ``t0`` (a window may start mid-period, mid-bucket), the last ends at ``t1``,
    and where a half-hour DST change ends an hour early the next hour's key lies before
    its first bucket. :mod:`local_db.aggregates` sums rows per period with them.
    """
    grid = bucket_grid(t0_ms, t1_ms)
    keys = period_start(grid, period, tz).to_numpy()
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])  # each period's first bucket
    starts = [t0_ms, *grid.to_numpy()[first[1:]].tolist()]
    ends = [*starts[1:], t1_ms]
    return [
        (int(k), int(a), int(b)) for k, a, b in zip(keys[first].tolist(), starts, ends, strict=True)
    ]


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
