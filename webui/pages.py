"""The dashboard's pages. Each is a full page, or its inner fragment for an htmx request.

The blueprint and :func:`render_page` live in :mod:`webui.blueprint`; each page has
its own module, imported here so that its routes are on the blueprint when the app
registers it.
"""

from __future__ import annotations

from webui import (  # noqa: F401  (importing a page module puts its routes on the blueprint)
    alerts,
    compare,
    downloads,
    dwell,
    flow,
    formatting,
    health,
    heatmap,
    live,
    queues,
    trends,
)
from webui.auth import requires
from webui.blueprint import bp, render_page, scope
from webui.db import read_db
from webui.periods import local_midnight_ms

__all__ = ["bp", "render_page"]


@bp.get("/")
@requires("view")
def index() -> str:
    """Today at a glance: footfall in and out per line since local midnight."""
    s = scope()
    config = s.config
    since = local_midnight_ms(s.now_ms, s.tz)
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
