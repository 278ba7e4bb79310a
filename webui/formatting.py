"""Numbers, changes and coverage tags as the pages print them (template globals).

Plain Python functions rather than Jinja macros: a table of a month has thousands
of cells, and a macro call costs ten times a function call.
"""

from __future__ import annotations

from markupsafe import Markup

from webui.blueprint import bp
from webui.periods import local

_TAGS = {
    "partial": '<span class="tag partial">partial{}</span>',
    "missing": '<span class="tag missing">no data</span>',
    "future": '<span class="tag">not yet</span>',
}


@bp.app_template_global()
def num(value: float | None, digits: int = 0, unit: str = "") -> str:
    """``1,234.5 s``; None (no value) is an em dash."""
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


@bp.app_template_global()
def pct(value: float | None) -> Markup:
    """A signed change in %, coloured by sign; None is an em dash."""
    if value is None:
        return Markup("—")
    cls = "up" if value > 0 else ("down" if value < 0 else "")
    return Markup('<span class="{}">{:+.1f} %</span>').format(cls, value)


@bp.app_template_global()
def status_tag(status: str, coverage: float | None = None) -> Markup:
    """The tag that marks a partial, missing or future period (nothing when complete)."""
    tag = _TAGS.get(status)
    if tag is None:
        return Markup("")
    share = "" if status != "partial" or coverage is None else f" {round(coverage * 100)} %"
    return Markup(tag).format(share)


@bp.app_template_global()
def status_class(status: str) -> str:
    """The row or cell class of a partial, missing or future period."""
    return f"st-{status}" if status in _TAGS else ""


@bp.app_template_filter()
def clock(ms: int, tz: str) -> str:
    """A UTC millisecond time as the store's local ``HH:MM``."""
    return f"{local(ms, tz):%H:%M}"
