"""Time windows in the store's local time: parsing the page's choice, and local labels.

Every stored time is UTC milliseconds; a window is ``[t0_ms, t1_ms)`` in UTC, chosen
in the store's time zone. Aggregates exist for closed 5-minute buckets only, so the
rolling windows end at the last closed bucket. Every date a page is asked for is
parsed here, and refused outside the years 2000-2100 (see
:func:`appliance.analytics.export.year_error`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.export import year_error
from appliance.analytics.rollups import Period

#: the window choices every page with a window offers, in menu order
WINDOWS = {
    "5m": "Last 5 minutes",
    "1h": "Last hour",
    "today": "Today",
    "yesterday": "Yesterday",
    "custom": "From … to …",
}
MAX_SPAN_MS = 400 * 86_400_000
_INPUT_FORMAT = "%Y-%m-%dT%H:%M"


class WindowError(ValueError):
    """A window the page cannot show (bad dates, reversed, too long)."""


@dataclass(frozen=True)
class Window:
    """A time window ``[t0_ms, t1_ms)`` (UTC ms) chosen in the store's time zone."""

    key: str
    t0_ms: int
    t1_ms: int
    tz: str

    @property
    def label(self) -> str:
        """E.g. ``Today · Wed 5 Jun 2024 00:00 – 17:30``."""
        start, end = local(self.t0_ms, self.tz), local(self.t1_ms, self.tz)
        tail = end.strftime("%H:%M") if start.date() == end.date() else fmt_day_time(end)
        return f"{WINDOWS[self.key]} · {fmt_day_time(start)} – {tail}"

    @property
    def from_text(self) -> str:
        """The start as a ``datetime-local`` input value."""
        return local(self.t0_ms, self.tz).strftime(_INPUT_FORMAT)

    @property
    def to_text(self) -> str:
        """The end as a ``datetime-local`` input value."""
        return local(self.t1_ms, self.tz).strftime(_INPUT_FORMAT)

    def args(self) -> dict[str, str]:
        """Query arguments that choose this window again (for links and CSV downloads)."""
        if self.key == "custom":
            return {"window": "custom", "from": self.from_text, "to": self.to_text}
        return {"window": self.key}


def now_ms() -> int:
    """UTC milliseconds now: the app's ``FOOTFALL_CLOCK`` (UTC seconds) if set, else the wall clock.

    A replay of stored data (or a test) sets ``app.config["FOOTFALL_CLOCK"]``.
    """
    clock = current_app.config.get("FOOTFALL_CLOCK")
    return round((clock() if clock is not None else time.time()) * 1000)


def local(ms: int, tz: str) -> datetime:
    """A UTC millisecond time as an aware local datetime."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))


def fmt_day_time(dt: datetime) -> str:
    """``Wed 5 Jun 2024 17:05``."""
    return f"{dt:%a} {dt.day} {dt:%b %Y %H:%M}"


def local_midnight_ms(ms: int, tz: str) -> int:
    """UTC milliseconds of the local midnight that began the store's day at ``ms``."""
    day = local(ms, tz).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return to_utc_ms(day, tz)


def to_utc_ms(naive_local: datetime, tz: str) -> int:
    """UTC milliseconds of a naive local wall time (an ambiguous one is read as summer time)."""
    return round(naive_local.replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def add_local_days(ms: int, days: int, tz: str) -> int:
    """The same local wall time ``days`` later (DST-safe)."""
    wall = local(ms, tz).replace(tzinfo=None) + timedelta(days=days)
    return to_utc_ms(wall, tz)


def _check_year(when: date, text: str) -> None:
    """Refuse ``when`` (parsed from ``text``) unless its year may be asked for.

    Raises:
        WindowError: the year is outside ``MIN_YEAR`` .. ``MAX_YEAR`` of
            :mod:`appliance.analytics.export`.
    """
    problem = year_error(when, text)
    if problem:
        raise WindowError(problem)


def parse_day(text: str) -> date:
    """A ``YYYY-MM-DD`` date from a query string (every page's date choices come here).

    Raises:
        WindowError: no such date, or a year outside 2000-2100.
    """
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise WindowError(f"{text!r} is not a date (YYYY-MM-DD)") from exc
    _check_year(day, text)
    return day


def parse_local(text: str, tz: str, *, end: bool = False) -> int:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM`` local time → UTC ms.

    Args:
        text: the input's value.
        tz: the store's time zone.
        end: a bare date means the end of that day (the next midnight).

    Raises:
        WindowError: the text is no such date or time, or its year is outside 2000-2100.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d")
        else:
            day = datetime.strptime(text, _INPUT_FORMAT)
    except ValueError as exc:
        raise WindowError(
            f"{text!r} is not a date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM)"
        ) from exc
    _check_year(day, text)
    return to_utc_ms(day + timedelta(days=1 if end and len(text) == 10 else 0), tz)


def last_closed_bucket_end(ms: int) -> int:
    """The end of the newest closed 5-minute bucket at ``ms``."""
    return ms - ms % BUCKET_MS


def check_span(t0_ms: int, t1_ms: int) -> None:
    """Refuse a reversed, empty or too long range.

    Raises:
        WindowError: the range cannot be shown.
    """
    if t1_ms <= t0_ms:
        raise WindowError("the end must be after the start")
    if t1_ms - t0_ms > MAX_SPAN_MS:
        raise WindowError("at most 400 days at once")


def window_from_args(args: Mapping[str, str], tz: str, now: int, default: str = "today") -> Window:
    """The window a page's query string asks for (``window``, and ``from``/``to`` for custom).

    Raises:
        WindowError: an unknown window name or a bad custom range.
    """
    key = args.get("window", default)
    closed = last_closed_bucket_end(now)
    midnight = local_midnight_ms(now, tz)
    if key == "5m":
        return Window(key, closed - BUCKET_MS, closed, tz)
    if key == "1h":
        return Window(key, closed - 12 * BUCKET_MS, closed, tz)
    if key == "today":
        return Window(key, midnight, max(closed, midnight + BUCKET_MS), tz)
    if key == "yesterday":
        return Window(key, add_local_days(midnight, -1, tz), midnight, tz)
    if key == "custom":
        t0 = parse_local(args.get("from", ""), tz)
        t1 = parse_local(args.get("to", ""), tz, end=True)
        check_span(t0, t1)
        return Window(key, t0, t1, tz)
    raise WindowError(f"unknown window {key!r}; one of {', '.join(WINDOWS)}")


def resolution(t0_ms: int, t1_ms: int) -> Period | None:
    """The step a time chart of ``[t0, t1)`` uses: 5-minute buckets (None), hours or days."""
    span = t1_ms - t0_ms
    if span <= 2 * 86_400_000:
        return None
    return "hour" if span <= 14 * 86_400_000 else "day"


def key_label(ms: int, period: Period | None, tz: str) -> str:
    """A period key as the store's local time: ``17:05``, ``Wed 5 Jun``, or ``Jun 2024``."""
    dt = local(ms, tz)
    if period == "month":
        return f"{dt:%b %Y}"
    if period == "week":
        return f"week of {dt:%a} {dt.day} {dt:%b %Y}"
    if period == "day":
        return f"{dt:%a} {dt.day} {dt:%b %Y}"
    return fmt_day_time(dt)
