"""The pages' blueprint: whole pages or htmx fragments, and the scope pages read by.

A page answers with :func:`render_page`; it reads the store, its time zone, now and
the asked-for window from :func:`scope`. The blueprint also guards the whole app's
JSON bodies (:func:`webui.bodies.refuse_unsafe_json`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, render_template, request

from appliance.config import BoxConfig
from webui.bodies import refuse_unsafe_json
from webui.context import context
from webui.floorplan import ZONE_KIND_LABELS
from webui.periods import (
    WINDOWS,
    Window,
    WindowError,
    last_closed_bucket_end,
    now_ms,
    window_from_args,
)

logger = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)
bp.before_app_request(refuse_unsafe_json)


def is_htmx() -> bool:
    """Whether htmx made this request (it then wants only the fragment)."""
    return request.headers.get("HX-Request") == "true"


def render_page(template: str, fragment: str, **values: object) -> str:
    """The whole page, or only its fragment when htmx asks (``HX-Request: true``)."""
    if is_htmx():
        return render_template(fragment, **values)
    return render_template(template, fragment=fragment, **values)


@dataclass(frozen=True)
class Scope:
    """What a page reads by: the store, its time zone, now, and the window asked for.

    Attributes:
        config: the store config.
        now_ms: UTC ms now (see :func:`webui.periods.now_ms`).
        window: the window of the query string, or the page's default.
        error: why the asked-for window was refused (the default is shown instead).
    """

    config: BoxConfig
    now_ms: int
    window: Window
    error: str | None = None

    @property
    def store_id(self) -> str:
        """The store's id (every aggregate row carries it)."""
        return self.config.store.id

    @property
    def tz(self) -> str:
        """The store's IANA time zone."""
        return self.config.store.timezone

    @property
    def closed_ms(self) -> int:
        """The end of the newest closed 5-minute bucket."""
        return last_closed_bucket_end(self.now_ms)


def scope(default_window: str = "today") -> Scope:
    """This request's :class:`Scope`; a bad window falls back to the default, with the reason."""
    config = context().config
    tz = config.store.timezone
    now = now_ms()
    try:
        return Scope(config, now, window_from_args(request.args, tz, now, default_window))
    except WindowError as exc:
        logger.info("window refused for %s: %s", request.full_path, exc)
        fallback = window_from_args({}, tz, now, default_window)
        return Scope(config, now, fallback, str(exc))


def page_status(s: Scope) -> int:
    """400 when the asked-for window was refused, else 200."""
    return 400 if s.error else 200


@bp.app_context_processor
def _page_globals() -> dict[str, object]:
    return {
        "windows": WINDOWS,
        "zone_kinds": ZONE_KIND_LABELS,
    }
