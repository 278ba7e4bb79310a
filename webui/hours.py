"""The store's opening hours (``store.opening_hours``) as UTC spans, and open or closed now.

A day's hours are ``[open, close)`` in local time; a ``close`` at or before ``open``
ends on the next day (a night shop), ``open == close`` is the whole day round. A
store without opening hours is always open (nothing is ever shown as closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from appliance.config.model import DAYS, StoreConfig
from webui.periods import fmt_day_time, local, to_utc_ms


@dataclass(frozen=True)
class OpenNow:
    """Whether the store is open at a moment, and the span that moment belongs to.

    Attributes:
        is_open: inside a day's opening hours (always True without opening hours).
        configured: the store has opening hours.
        span: today's opening hours as UTC ms ``(open, close)``, or the span open now;
            None when closed all day.
        next_open_ms: when it opens next (None: open now, or no hours).
    """

    is_open: bool
    configured: bool
    span: tuple[int, int] | None
    next_open_ms: int | None

    def closed_text(self, tz: str) -> str:
        """``Closed · opens Thu 6 Jun 2024 07:00`` (empty while open)."""
        if self.is_open:
            return ""
        if self.next_open_ms is None:
            return "Closed"
        return f"Closed · opens {fmt_day_time(local(self.next_open_ms, tz))}"


def _wall(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm))


def day_span(store: StoreConfig, day: date) -> tuple[int, int] | None:
    """The opening hours that begin on local ``day`` as UTC ms ``(open, close)``; None: closed.

    Several entries for the same day are joined into one span from the earliest
    opening to the latest closing.
    """
    spans = []
    for hours in store.opening_hours:
        if DAYS[day.weekday()] not in hours.days:
            continue
        start = _wall(day, hours.open)
        end = _wall(day, hours.close)
        if end <= start:
            end += timedelta(days=1)
        spans.append((to_utc_ms(start, store.timezone), to_utc_ms(end, store.timezone)))
    if not spans:
        return None
    return min(s for s, _ in spans), max(e for _, e in spans)


def open_now(store: StoreConfig, ms: int) -> OpenNow:
    """Whether the store is open at ``ms`` (UTC), with today's span and the next opening."""
    if not store.opening_hours:
        return OpenNow(True, False, None, None)
    today = local(ms, store.timezone).date()
    for offset in (-1, 0):  # yesterday's hours may run past midnight
        span = day_span(store, today + timedelta(days=offset))
        if span is not None and span[0] <= ms < span[1]:
            return OpenNow(True, True, span, None)
    next_open = None
    for offset in range(8):
        span = day_span(store, today + timedelta(days=offset))
        if span is not None and span[0] > ms:
            next_open = span[0]
            break
    return OpenNow(False, True, day_span(store, today), next_open)
