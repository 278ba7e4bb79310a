"""The Alerts page: what is active now, the history of a window, and acknowledging.

Acknowledging needs the ``acknowledge`` permission (managers) and the CSRF token
(htmx sends it from the page's ``hx-headers``); it silences the buzzer for that alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import abort, flash, redirect, url_for
from werkzeug.wrappers import Response as BaseResponse

from appliance.alerts import AlertRecord, acknowledge, active_alerts, alert_history, get_alert
from webui.auth import current_user, requires
from webui.blueprint import Scope, bp, is_htmx, page_status, render_page, scope
from webui.db import read_db, write_db
from webui.periods import fmt_day_time, local

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 500


@dataclass(frozen=True)
class AlertRow:
    """An alert as the page lists it (local times, duration)."""

    alert: AlertRecord
    raised: str
    cleared: str | None
    duration_min: float | None
    acked: str | None


def _row(a: AlertRecord, s: Scope) -> AlertRow:
    end = a.cleared_ms if a.cleared_ms is not None else s.now_ms
    return AlertRow(
        a,
        fmt_day_time(local(a.raised_ms, s.tz)),
        None if a.cleared_ms is None else fmt_day_time(local(a.cleared_ms, s.tz)),
        (end - a.raised_ms) / 60_000,
        None if a.acked_ms is None else f"{a.acked_by} · {fmt_day_time(local(a.acked_ms, s.tz))}",
    )


def _page(s: Scope) -> str:
    conn = read_db()
    active = [_row(a, s) for a in active_alerts(conn, s.store_id)]
    w = s.window
    history = alert_history(conn, since_ms=w.t0_ms, until_ms=w.t1_ms, limit=HISTORY_LIMIT)
    return render_page(
        "alerts.html", "alerts_fragment.html",
        s=s, active=active, history=[_row(a, s) for a in history if a.store_id == s.store_id],
        limit=HISTORY_LIMIT,
    )  # fmt: skip


#: the largest id SQLite can hold: a larger one in the URL is no such alert (not an OverflowError)
MAX_ROWID = 2**63 - 1


@bp.get("/alerts")
@requires("view")
def alerts() -> tuple[str, int]:
    """Active alerts and the window's history."""
    s = scope("today")
    return _page(s), page_status(s)


@bp.post("/alerts/<int:alert_id>/ack")
@requires("acknowledge")
def acknowledge_alert(alert_id: int) -> str | BaseResponse:
    """Acknowledge one alert, then show the page again (htmx: the fragment)."""
    if alert_id > MAX_ROWID or get_alert(read_db(), alert_id) is None:
        abort(404)
    user = current_user()
    assert user is not None  # requires() let only signed-in users through
    s = scope("today")
    done = acknowledge(write_db(), alert_id, user.username, s.now_ms)
    if is_htmx():  # the row now names who acknowledged it
        return _page(s)
    flash(f"Alert {alert_id} {'acknowledged' if done else 'was already acknowledged'}.", "ok")
    return redirect(url_for("pages.alerts"))
