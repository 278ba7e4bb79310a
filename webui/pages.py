"""The dashboard's pages. Each is a full page, or its inner fragment for an htmx request."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template, request

from webui.app import context
from webui.auth import requires
from webui.db import read_db

bp = Blueprint("pages", __name__)


def render_page(template: str, fragment: str, **values: object) -> str:
    """The whole page, or only its fragment when htmx asks (``HX-Request: true``)."""
    if request.headers.get("HX-Request") == "true":
        return render_template(fragment, **values)
    return render_template(template, fragment=fragment, **values)


def local_midnight_ms(now_ms: int, tz: str) -> int:
    """UTC milliseconds of the local midnight that began the store's day."""
    local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz))
    return round(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


@bp.get("/")
@requires("view")
def index() -> str:
    """Today at a glance: footfall in and out per line since local midnight."""
    config = context().config
    since = local_midnight_ms(round(time.time() * 1000), config.store.timezone)
    rows = (
        read_db()
        .execute(
            "SELECT line_id, direction, sum(count) FROM agg_footfall "
            "WHERE store_id = ? AND bucket_ms >= ? GROUP BY 1, 2 ORDER BY 1, 2",
            (config.store.id, since),
        )
        .fetchall()
    )
    counts: dict[str, dict[str, int]] = {line.id: {"in": 0, "out": 0} for line in config.lines}
    for line_id, direction, n in rows:
        counts.setdefault(line_id, {"in": 0, "out": 0})[direction] = int(n)
    return render_page("overview.html", "overview_fragment.html", counts=counts)
