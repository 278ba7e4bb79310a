"""The Trends page: footfall in by hour, day, week or month, against before and last year.

Each granularity shows a range that ends with the period holding the chosen date:
an hour chart shows that day, a day chart its week (Monday first), a week chart the
12 weeks up to it, a month chart the 6 months up to it. "Previous" is the range just
before; "last year" is 52 weeks before (the same weekdays), or 12 months for months.
Rows are compared position by position; totals compare only the periods the current
range has data for, so a day in progress is set against the same hours.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

import pandas as pd
from flask import request

from appliance.analytics.coverage import coverage_by_period
from appliance.analytics.rollups import PERIODS, Period, period_bounds
from local_db.aggregates import footfall_per_period
from webui.auth import requires
from webui.blueprint import Scope, bp, page_status, render_page, scope
from webui.charts import align, chart, series
from webui.db import read_db
from webui.periods import Window, WindowError, key_label, local, parse_day, to_utc_ms

SPAN = {"hour": 1, "day": 7, "week": 12, "month": 6}  # days, days, weeks, months


@dataclass(frozen=True)
class Range:
    """One compared range: ``[t0, t1)`` UTC ms and its name."""

    name: str
    t0_ms: int
    t1_ms: int


def _months(d: date, n: int) -> date:
    m = d.year * 12 + d.month - 1 + n
    return date(m // 12, m % 12 + 1, 1)


def ranges(period: Period, anchor: date, tz: str) -> list[Range]:
    """The current range, the one before it, and the same range a year before."""
    if period == "month":
        first = _months(anchor.replace(day=1), 1 - SPAN["month"])
        bounds = [(first, _months(first, SPAN["month"]))]
        bounds.append((_months(first, -SPAN["month"]), first))
        bounds.append((_months(first, -12), _months(first, SPAN["month"] - 12)))
    else:
        if period == "hour":
            start, days = anchor, 1
        elif period == "day":
            start, days = anchor - timedelta(days=anchor.weekday()), 7
        else:
            days = 7 * SPAN["week"]
            start = anchor - timedelta(days=anchor.weekday()) - timedelta(days=days - 7)
        end = start + timedelta(days=days)
        year = timedelta(weeks=52)
        bounds = [(start, end), (start - (end - start), start), (start - year, end - year)]
    names = ("current", "previous", "last year")
    return [
        Range(
            name,
            to_utc_ms(datetime.combine(a, datetime.min.time()), tz),
            to_utc_ms(datetime.combine(b, datetime.min.time()), tz),
        )
        for name, (a, b) in zip(names, bounds, strict=True)
    ]


def range_series(
    conn: sqlite3.Connection, s: Scope, r: Range, period: Period
) -> tuple[list[int], list[Any], list[str]]:
    """Keys, footfall in per key (None where no data) and statuses of one range."""
    cov = coverage_by_period(conn, s.store_id, r.t0_ms, r.t1_ms, s.closed_ms, period, s.tz)
    bounds = period_bounds(r.t0_ms, r.t1_ms, period, s.tz)
    ins = footfall_per_period(conn, s.store_id, bounds, "in")
    keys = cov.index
    values = ins.set_index("key")["n"] if len(ins) else pd.Series(dtype=float)
    return [int(k) for k in keys], align(values, keys, cov["status"], 0.0), list(cov["status"])


def _pct(now: float | None, then: float | None) -> float | None:
    return None if now is None or not then else 100 * (now - then) / then


def _fit(values: list[Any], n: int) -> list[Any]:
    return (values + [None] * n)[:n]


def trend(conn: sqlite3.Connection, s: Scope, period: Period, anchor: date) -> dict[str, Any]:
    """The chart, table rows and totals of one trend view."""
    cur, prev, last = ranges(period, anchor, s.tz)
    keys, now_v, now_st = range_series(conn, s, cur, period)
    _, prev_v, prev_st = range_series(conn, s, prev, period)
    _, last_v, last_st = range_series(conn, s, last, period)
    n = len(keys)
    prev_v, prev_st, last_v, last_st = (
        _fit(prev_v, n), _fit(prev_st, n), _fit(last_v, n), _fit(last_st, n)
    )  # fmt: skip
    rows = [
        {
            "label": key_label(k, period, s.tz),
            "now": (now_v[i], now_st[i]),
            "prev": (prev_v[i], prev_st[i]),
            "prev_pct": _pct(now_v[i], prev_v[i]),
            "last": (last_v[i], last_st[i]),
            "last_pct": _pct(now_v[i], last_v[i]),
        }
        for i, k in enumerate(keys)
    ]
    have = [i for i in range(n) if now_v[i] is not None]

    def total(values: list[Any]) -> float | None:
        got = [values[i] for i in have if values[i] is not None]
        return float(sum(got)) if got else None

    totals = {"now": total(now_v), "prev": total(prev_v), "last": total(last_v)}
    totals["prev_pct"] = _pct(totals["now"], totals["prev"])
    totals["last_pct"] = _pct(totals["now"], totals["last"])
    lines = [
        series("this " + ("day" if period == "hour" else "range"), now_v, 0),
        series("previous", prev_v, 1, dash=True),
        series("last year", last_v, 2, dash=True),
    ]
    title = f"Footfall in by {period}"
    return {
        "chart": chart(f"trend-{period}", title, keys, lines, now_st, s.tz, "people in"),
        "rows": rows,
        "totals": totals,
        "ranges": [
            (r.name, key_label(r.t0_ms, "day", s.tz), key_label(r.t1_ms - 1, "day", s.tz))
            for r in (cur, prev, last)
        ],
        "window": Window("custom", cur.t0_ms, cur.t1_ms, s.tz),
    }


def anchor_arg(text: str | None, s: Scope) -> date:
    """The chosen date (``YYYY-MM-DD``), default today in the store's time zone.

    Raises:
        WindowError: not a date, or a year outside 2000-2100.
    """
    if not text:
        return local(s.now_ms, s.tz).date()
    return parse_day(text)


@bp.get("/trends")
@requires("view")
def trends() -> tuple[str, int]:
    """Footfall in over time against the previous period and last year."""
    s = scope("today")
    period = cast(Period, request.args.get("period", "day"))
    error = s.error
    if period not in PERIODS:
        error, period = f"unknown period {period!r}; one of {', '.join(PERIODS)}", "day"
    try:
        anchor = anchor_arg(request.args.get("date"), s)
    except WindowError as exc:
        error, anchor = str(exc), local(s.now_ms, s.tz).date()
    view = trend(read_db(), s, period, anchor)
    page = render_page(
        "trends.html", "trends_fragment.html",
        s=s, period=period, periods=PERIODS, anchor=anchor.isoformat(), view=view, error=error,
    )  # fmt: skip
    return page, 400 if error else page_status(s)
