"""CSV downloads of the charts' tables (``export`` permission).

The rows are exactly what ``footfall export`` writes for the same table, window,
period and k (k-suppression included), plus two columns: the bucket's local time
and its coverage status, so that a gap in the file never reads as a zero.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

import pandas as pd
from flask import Response, abort, request, url_for

from appliance.analytics.coverage import bucket_status, by_period
from appliance.analytics.export import TABLES, read_table
from appliance.analytics.rollups import PERIODS, Period
from webui.auth import requires
from webui.blueprint import Scope, bp, scope
from webui.db import read_db
from webui.periods import Window, WindowError

logger = logging.getLogger(__name__)

#: the largest k of k-suppression a page or CSV download takes
MAX_K = 100
_WHOLE = re.compile(r"[0-9]{1,3}")


def period_arg(value: str | None) -> Period | None:
    """``hour``/``day``/``week``/``month`` from a query string; none or empty: 5-minute buckets.

    Raises:
        WindowError: any other value.
    """
    if not value:
        return None
    if value not in PERIODS:
        raise WindowError(f"unknown period {value!r}; one of {', '.join(PERIODS)} (or none)")
    return value


def k_arg(value: str | None) -> int:
    """The k of k-suppression from a query string; none or empty: 0 (off).

    Raises:
        WindowError: not a whole number from 0 to :data:`MAX_K`.
    """
    text = (value or "").strip()
    if not text:
        return 0
    if not _WHOLE.fullmatch(text) or int(text) > MAX_K:
        raise WindowError(f"k: {value!r} is not a whole number from 0 to {MAX_K}")
    return int(text)


def page_k(s: Scope) -> tuple[Scope, int]:
    """A page's k; a bad one is the page's error (a 400) and the page shows k 0, the default."""
    try:
        return s, k_arg(request.args.get("k"))
    except WindowError as exc:
        logger.info("k refused for %s: %s", request.full_path, exc)
        return replace(s, error="; ".join(filter(None, (s.error, str(exc))))), 0


def with_local_time(df: pd.DataFrame, statuses: pd.Series, tz: str) -> pd.DataFrame:
    """Insert ``local_time`` and ``coverage`` after ``bucket_ms``."""
    out = df.copy()
    at = out.columns.get_loc("bucket_ms") + 1
    stamp = pd.to_datetime(out["bucket_ms"], unit="ms", utc=True).dt.tz_convert(tz)
    out.insert(at, "local_time", stamp.dt.strftime("%Y-%m-%dT%H:%M%z"))
    out.insert(at + 1, "coverage", out["bucket_ms"].map(statuses).fillna("missing"))
    return out


@bp.get("/export/<table>.csv")
@requires("export")
def export_csv(table: str) -> Response:
    """One aggregate table for the page's window, as CSV (``period``, ``k`` as on the page)."""
    if table not in TABLES:
        abort(404)
    s = scope()
    try:
        if s.error:
            raise WindowError(s.error)
        period = period_arg(request.args.get("period"))
        k = k_arg(request.args.get("k"))
    except WindowError as exc:
        logger.warning("CSV %s refused: %s", table, exc)
        abort(400, str(exc))
    w = s.window
    conn = read_db()
    df = read_table(conn, table, w.t0_ms, w.t1_ms, period=period, tz=s.tz, k=k)
    cov = by_period(bucket_status(conn, s.store_id, w.t0_ms, w.t1_ms, s.closed_ms), period, s.tz)
    df = with_local_time(df, cov["status"], s.tz)
    name = f"{s.store_id}-{table}-{w.from_text}-{w.to_text}".replace(":", "")
    logger.info("CSV %s: %d rows, period %s, k %d", name, len(df), period, k)
    return Response(
        df.to_csv(index=False),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@bp.app_template_global()
def csv_url(window: Window, table: str, **extra: object) -> str:
    """The CSV download of ``table`` for ``window`` (with ``period``, ``k``, … as given)."""
    args: dict[str, Any] = {**window.args(), **extra}
    return url_for("pages.export_csv", table=table, **args)
