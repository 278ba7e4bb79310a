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
    today,
    trends,
)
from webui.blueprint import bp, render_page

__all__ = ["bp", "render_page"]
