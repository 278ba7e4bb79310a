"""The Compare page: two date ranges (A/B), or before and after a change, side by side.

Each range's numbers come from the same aggregate sums; the page shows B − A and
the change in %. Both ranges' coverage is shown, since a range with camera gaps
is not like for like.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta

from flask import request

from webui.auth import requires
from webui.blueprint import Scope, bp, render_page, scope
from webui.coverage_strip import CoverageSummary, coverage_strip
from webui.db import read_db
from webui.periods import Window, WindowError, local, parse_day, parse_local

MAX_DAYS = 366


@dataclass(frozen=True)
class Metric:
    """One compared number: A, B, their difference and the change in %."""

    group: str
    label: str
    a: float | None
    b: float | None
    unit: str = ""

    @property
    def delta(self) -> float | None:
        """B − A."""
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def pct(self) -> float | None:
        """(B − A) / A in %."""
        d = self.delta
        return None if d is None or not self.a else 100 * d / self.a


def range_metrics(
    conn: sqlite3.Connection, s: Scope, w: Window
) -> tuple[dict[tuple[str, str], float | None], CoverageSummary]:
    """Every compared number of one range, keyed (group, label), and its coverage."""
    p = (s.store_id, w.t0_ms, w.t1_ms)
    where = "store_id = ? AND bucket_ms >= ? AND bucket_ms < ?"
    out: dict[tuple[str, str], float | None] = {}
    ins_outs = dict(
        conn.execute(
            f"SELECT direction, sum(count) FROM agg_footfall WHERE {where} GROUP BY 1", p
        ).fetchall()
    )
    for direction in ("in", "out"):
        out["Footfall", f"people {direction}"] = float(ins_outs.get(direction, 0))
    mean, peak = conn.execute(
        f"SELECT avg(mean), max(max) FROM agg_occupancy WHERE {where} AND zone_id = ''", p
    ).fetchone()
    out["Occupancy", "mean people in the store"] = mean
    out["Occupancy", "peak people in the store"] = peak
    dwell = {
        z: (v, t)
        for z, v, t in conn.execute(
            f"SELECT zone_id, sum(visits), sum(total_s) FROM agg_dwell WHERE {where} GROUP BY 1", p
        )
    }
    for z in s.config.zones:
        if z.kind == "staff_only":
            continue
        visits, total = dwell.get(z.id, (0, 0.0))
        out["Visits", z.id] = float(visits)
        out["Mean dwell (s)", z.id] = total / visits if visits else None
    q = conn.execute(
        f"SELECT sum(joined), sum(served), sum(abandoned), sum(wait_total_s) FROM agg_queue "
        f"WHERE {where}",
        p,
    ).fetchone()
    joined, served, abandoned, wait = (0 if v is None else v for v in q)
    out["Queues", "joined"] = float(joined)
    out["Queues", "abandoned %"] = 100 * abandoned / joined if joined else None
    out["Queues", "mean wait (s)"] = wait / served if served else None
    funnel = dict(
        conn.execute(f"SELECT step, sum(people) FROM agg_funnel WHERE {where} GROUP BY 1", p)
    )
    came = funnel.get(0, 0)
    last = funnel.get(max(funnel), 0) if funnel else 0
    out["Funnel", "came in → checkout %"] = 100 * last / came if came else None
    cov = coverage_strip(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms, s.tz)
    if cov.complete + cov.partial == 0:  # no data at all: blanks, not zeros
        out = dict.fromkeys(out)
    return out, cov


def day_range(first: str, last: str, s: Scope) -> Window:
    """The local days ``first`` .. ``last`` (inclusive) as a window.

    Raises:
        WindowError: bad dates, reversed, or longer than a year.
    """
    t0, t1 = parse_local(first, s.tz), parse_local(last, s.tz, end=True)
    if t1 <= t0:
        raise WindowError(f"{last} is before {first}")
    if t1 - t0 > MAX_DAYS * 86_400_000 + 3_600_000:
        raise WindowError(f"at most {MAX_DAYS} days per range")
    return Window("custom", t0, t1, s.tz)


def chosen_ranges(args: dict[str, str], s: Scope) -> tuple[str, Window, Window]:
    """Mode and the two ranges a query string asks for (defaults: the last 7 days vs the 7 before).

    Raises:
        WindowError: a bad date or day count.
    """
    today = local(s.now_ms, s.tz).date()
    mode = args.get("mode", "ab")
    if mode == "change":
        change = parse_day(args["change"]) if args.get("change") else today
        try:
            days = int(args.get("days", "7"))
        except ValueError as exc:
            raise WindowError(f"days: {args.get('days')!r} is not a whole number") from exc
        if not 1 <= days <= MAX_DAYS:
            raise WindowError(f"days: 1 to {MAX_DAYS}")
        before = (change - timedelta(days=days)).isoformat()
        a = day_range(before, (change - timedelta(days=1)).isoformat(), s)
        b = day_range(change.isoformat(), (change + timedelta(days=days - 1)).isoformat(), s)
        return mode, a, b
    y = today - timedelta(days=1)
    a = day_range(
        args.get("a_from") or (y - timedelta(days=13)).isoformat(),
        args.get("a_to") or (y - timedelta(days=7)).isoformat(),
        s,
    )
    b = day_range(
        args.get("b_from") or (y - timedelta(days=6)).isoformat(),
        args.get("b_to") or y.isoformat(),
        s,
    )
    return "ab", a, b


@bp.get("/compare")
@requires("view")
def compare() -> tuple[str, int]:
    """Two ranges side by side with differences."""
    s = scope("today")
    error = None
    args = request.args.to_dict()
    try:
        mode, a, b = chosen_ranges(args, s)
    except WindowError as exc:
        error = str(exc)
        mode, a, b = chosen_ranges({}, s)
    conn = read_db()
    ma, cov_a = range_metrics(conn, s, a)
    mb, cov_b = range_metrics(conn, s, b)
    metrics = [Metric(g, label, ma[g, label], mb[g, label]) for g, label in ma]
    first = {"a": local(a.t0_ms, s.tz).date(), "b": local(b.t0_ms, s.tz).date()}
    last = {"a": local(a.t1_ms - 1, s.tz).date(), "b": local(b.t1_ms - 1, s.tz).date()}
    form = {
        "a_from": first["a"].isoformat(),
        "a_to": last["a"].isoformat(),
        "b_from": first["b"].isoformat(),
        "b_to": last["b"].isoformat(),
        "change": args.get("change") or first["b"].isoformat(),
        "days": args.get("days", "7"),
    }
    page = render_page(
        "compare.html", "compare_fragment.html",
        s=s, mode=mode, a=a, b=b, metrics=metrics, cov_a=cov_a, cov_b=cov_b, error=error,
        form=form,
    )  # fmt: skip
    return page, 400 if error else 200
