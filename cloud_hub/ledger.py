"""The completeness ledger: per store and local day, which hours are in and how complete.

An hour (store-local) is ``complete`` (all twelve 5-minute windows arrived, each complete
on the box), ``missing`` (all twelve arrived and the box had no camera data in any),
``partial`` (anything between), ``not_received`` (no window has arrived) or ``future``.
A day is:

- ``arriving``: not over yet in the store's time zone, or some hours are not received
  and the store has sent nothing later than the day yet (a box catching up after an
  outage sends oldest first, so the rest is still on its way);
- ``not_received``: no hour of it has arrived;
- ``complete`` / ``missing``: every hour complete / missing;
- ``partial``: anything else (hours partial, or gaps behind later data);
- ``future``: it has not begun.

:data:`COUNTED` are the states the comparison's totals and averages include; the others
are excluded (an arriving day is never averaged in as a low day) and the pages say how
many store-days were left out and why. The ledger reads only ``ledger_hours`` and
``applied_batches`` (never the 5-minute facts).
"""

from __future__ import annotations

import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, Literal

from sqlalchemy import Connection, func, or_, select

from cloud_hub.schema import applied_batches, ledger_hours
from cloud_hub.schema import stores as store_table

HOUR_MS: Final = 3_600_000
WINDOWS_PER_HOUR: Final = 12
HourState = Literal["complete", "partial", "missing", "not_received", "future"]
DayState = Literal["complete", "partial", "missing", "not_received", "arriving", "future"]
DAY_STATES: Final[tuple[DayState, ...]] = (
    "complete", "partial", "missing", "not_received", "arriving", "future",
)  # fmt: skip
#: Store-days the totals include (partial ones flagged); the rest are excluded.
COUNTED: Final[frozenset[DayState]] = frozenset({"complete", "partial"})
# a local day starts at the earliest in UTC+14 and ends at the latest in UTC-12
_EARLIEST: Final = zoneinfo.ZoneInfo("Etc/GMT-14")
_LATEST: Final = zoneinfo.ZoneInfo("Etc/GMT+12")


@dataclass(frozen=True)
class DayLedger:
    """One store-day of the ledger."""

    store_id: str
    day: date
    state: DayState
    hours: tuple[HourState, ...]
    updated_ms: int | None  # the last time a window of this day arrived

    @property
    def counted(self) -> bool:
        """Whether totals include this store-day."""
        return self.state in COUNTED

    def hour_counts(self) -> dict[str, int]:
        """How many hours are in each state."""
        return dict(Counter(self.hours))


@dataclass
class Ledger:
    """The ledger of some stores over some days, and each store's last batch."""

    days: dict[tuple[str, date], DayLedger] = field(default_factory=dict)
    last_batch_ms: dict[str, int | None] = field(default_factory=dict)

    def of(self, store_id: str) -> list[DayLedger]:
        """One store's days, oldest first."""
        return sorted((d for d in self.days.values() if d.store_id == store_id),
                      key=lambda d: d.day)  # fmt: skip

    def state_counts(self) -> dict[str, int]:
        """Store-days per state (every state named, zeros included)."""
        counts = Counter(d.state for d in self.days.values())
        return {state: counts.get(state, 0) for state in DAY_STATES}

    def excluded(self) -> int:
        """Store-days the totals leave out."""
        return sum(1 for d in self.days.values() if not d.counted)


def day_bounds(day: date, tz: zoneinfo.ZoneInfo) -> tuple[int, int]:
    """UTC ms of a local day's first instant and of the next day's."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return round(start.timestamp() * 1000), round(end.timestamp() * 1000)


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Days as runs of consecutive dates ``(first, last)`` (a period and its shifts)."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _hour_state(row: tuple[int, int, int] | None, hour_ms: int, now_ms: int) -> HourState:
    if hour_ms >= now_ms:
        return "future"
    if row is None:
        return "not_received"
    buckets, complete, missing = row
    if complete >= WINDOWS_PER_HOUR:
        return "complete"
    if buckets >= WINDOWS_PER_HOUR and missing >= buckets:
        return "missing"
    return "partial"


def _day_state(
    hours: list[HourState], end_ms: int, newest_hour: int | None, now_ms: int
) -> DayState:
    if all(h == "future" for h in hours):
        return "future"
    if now_ms < end_ms:
        return "arriving"
    counts = Counter(hours)
    if counts["not_received"] == len(hours):
        return "not_received"
    if counts["not_received"] and (newest_hour is None or newest_hour + HOUR_MS < end_ms):
        return "arriving"
    if counts["complete"] == len(hours):
        return "complete"
    if counts["missing"] == len(hours):
        return "missing"
    return "partial"


def compute(
    conn: Connection, stores: Iterable[tuple[str, str]], days: list[date], now_ms: int
) -> Ledger:
    """The ledger of ``stores`` (``(id, time zone)``) over ``days`` at ``now_ms``."""
    zones = {store_id: zoneinfo.ZoneInfo(tz) for store_id, tz in stores}
    ledger = Ledger()
    if not zones or not days:
        return ledger
    ids = sorted(zones)
    ranges = [
        (ledger_hours.c.hour_ms >= day_bounds(first, _EARLIEST)[0])
        & (ledger_hours.c.hour_ms < day_bounds(last, _LATEST)[1])
        for first, last in _runs(days)
    ]
    rows: dict[str, dict[int, tuple[tuple[int, int, int], int]]] = defaultdict(dict)
    for store_id, hour_ms, buckets, complete, missing, last in conn.execute(
        select(
            ledger_hours.c.store_id, ledger_hours.c.hour_ms, ledger_hours.c.buckets,
            ledger_hours.c.complete, ledger_hours.c.missing, ledger_hours.c.last_received_ms,
        ).where(ledger_hours.c.store_id.in_(ids), or_(*ranges))
    ):  # fmt: skip
        rows[store_id][hour_ms] = ((buckets, complete, missing), last)
    # one index probe per store (a GROUP BY would read each store's whole history)
    latest = (
        select(func.max(ledger_hours.c.hour_ms))
        .where(ledger_hours.c.store_id == store_table.c.id)
        .scalar_subquery()
    )
    newest: dict[str, int | None] = {
        store_id: hour
        for store_id, hour in conn.execute(
            select(store_table.c.id, latest).where(store_table.c.id.in_(ids))
        )
    }
    ledger.last_batch_ms = dict.fromkeys(ids, None)
    for store_id, last in conn.execute(
        select(applied_batches.c.store_id, func.max(applied_batches.c.received_ms))
        .where(applied_batches.c.store_id.in_(ids))
        .group_by(applied_batches.c.store_id)
    ):
        ledger.last_batch_ms[store_id] = last
    for store_id, tz in zones.items():
        own = rows.get(store_id, {})
        for day in days:
            start, end = day_bounds(day, tz)
            starts = range(start, end, HOUR_MS)
            states = [_hour_state(own[h][0] if h in own else None, h, now_ms) for h in starts]
            arrivals = [own[h][1] for h in starts if h in own]
            ledger.days[(store_id, day)] = DayLedger(
                store_id, day, _day_state(states, end, newest.get(store_id), now_ms),
                tuple(states), max(arrivals) if arrivals else None,
            )  # fmt: skip
    return ledger
