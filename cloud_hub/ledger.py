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
many store-days were left out and why.

Ingest keeps ``ledger_days`` (one row per store-day, its hours as a string of
:data:`HOUR_CODES`) from ``ledger_hours`` with :func:`day_row`, in the batch's
transaction; :func:`compute` reads one row per store-day from it, each store's newest
ledger hour (an index probe) and its last batch (an index probe), never the hours of
a whole period nor the 5-minute facts. An hour that has begun is never ``future``
while it has not begun, whatever the row says: the current time decides that.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

from sqlalchemy import Connection, and_, func, or_, select

from cloud_hub.schema import applied_batches, ledger_days, ledger_hours
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
#: The letter of each received hour state in ``ledger_days.hours`` (``-``: not received).
HOUR_CODES: Final[dict[HourState, str]] = {
    "complete": "c", "partial": "p", "missing": "m", "not_received": "-",
}  # fmt: skip
_DECODE: Final[dict[str, HourState]] = {
    **{code: state for state, code in HOUR_CODES.items()}, "f": "future",
}  # fmt: skip


class LedgerHour(NamedTuple):
    """One ``ledger_hours`` row of a store (its windows' counts and arrivals)."""

    hour_ms: int
    buckets: int
    complete: int
    missing: int
    first_received_ms: int
    last_received_ms: int


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
    # each store's days, built once per size of ``days`` (pages ask for every store's)
    _by_store: dict[str, list[DayLedger]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=-1, repr=False)

    def of(self, store_id: str) -> list[DayLedger]:
        """One store's days, oldest first."""
        if self._indexed != len(self.days):
            index: dict[str, list[DayLedger]] = defaultdict(list)
            for entry in self.days.values():
                index[entry.store_id].append(entry)
            for entries in index.values():
                entries.sort(key=lambda d: d.day)
            self._by_store, self._indexed = dict(index), len(self.days)
        return list(self._by_store.get(store_id, ()))

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


def received_state(buckets: int, complete: int, missing: int) -> HourState:
    """The state of an hour some windows of which arrived (``buckets`` of them)."""
    if complete >= WINDOWS_PER_HOUR:
        return "complete"
    if buckets >= WINDOWS_PER_HOUR and missing >= buckets:
        return "missing"
    return "partial"


def day_row(
    store_id: str, day: date, start_ms: int, end_ms: int, hours: Iterable[LedgerHour]
) -> dict[str, Any] | None:
    """The ``ledger_days`` row of a store-day from its ``ledger_hours`` (None: none arrived).

    Args:
        store_id: The store.
        day: The local day.
        start_ms: UTC ms of its first instant (:func:`day_bounds`).
        end_ms: UTC ms of the next day's first instant.
        hours: The store's ledger hours in ``[start_ms, end_ms)``.
    """
    codes = ["-"] * len(range(start_ms, end_ms, HOUR_MS))
    counts: Counter[HourState] = Counter()
    first: int | None = None
    last: int | None = None
    for hour in hours:
        index, off_phase = divmod(hour.hour_ms - start_ms, HOUR_MS)
        if off_phase or not 0 <= index < len(codes):
            continue  # not one of this day's local hours
        state = received_state(hour.buckets, hour.complete, hour.missing)
        codes[index] = HOUR_CODES[state]
        counts[state] += 1
        first = hour.first_received_ms if first is None else min(first, hour.first_received_ms)
        last = hour.last_received_ms if last is None else max(last, hour.last_received_ms)
    if first is None or last is None:
        return None
    return {
        "store_id": store_id, "day": day.isoformat(), "hours": "".join(codes),
        "complete": counts["complete"], "partial": counts["partial"],
        "missing": counts["missing"], "first_received_ms": first, "last_received_ms": last,
    }  # fmt: skip


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


def _hours(codes: str, begun: int) -> tuple[HourState, ...]:
    """Hour states from a ``ledger_days.hours`` string; hours from ``begun`` on are future."""
    return tuple(_DECODE[c] for c in codes[:begun] + "f" * (len(codes) - begun))


def compute(
    conn: Connection, stores: Iterable[tuple[str, str]], days: list[date], now_ms: int
) -> Ledger:
    """The ledger of ``stores`` (``(id, time zone)``) over ``days`` at ``now_ms``."""
    zones = {store_id: tz for store_id, tz in stores}
    ledger = Ledger()
    if not zones or not days:
        return ledger
    ids = sorted(zones)
    ranges = [
        and_(ledger_days.c.day >= first.isoformat(), ledger_days.c.day <= last.isoformat())
        for first, last in _runs(days)
    ]
    rows: dict[tuple[str, str], tuple[str, int]] = {
        (store_id, day): (codes, last)
        for store_id, day, codes, last in conn.execute(
            select(
                ledger_days.c.store_id, ledger_days.c.day, ledger_days.c.hours,
                ledger_days.c.last_received_ms,
            ).where(ledger_days.c.store_id.in_(ids), or_(*ranges))
        ).all()
    }  # fmt: skip
    # one index probe per store (a GROUP BY would read each store's whole history)
    latest = (
        select(func.max(ledger_hours.c.hour_ms))
        .where(ledger_hours.c.store_id == store_table.c.id)
        .scalar_subquery()
    )
    last_batch = (
        select(func.max(applied_batches.c.received_ms))
        .where(applied_batches.c.store_id == store_table.c.id)
        .scalar_subquery()
    )
    newest: dict[str, int | None] = {}
    ledger.last_batch_ms = dict.fromkeys(ids)
    for store_id, hour, batch_ms in conn.execute(
        select(store_table.c.id, latest, last_batch).where(store_table.c.id.in_(ids))
    ).all():
        newest[store_id], ledger.last_batch_ms[store_id] = hour, batch_ms
    # per time zone, each day's bounds, hours and how many of them have begun
    calendar: dict[str, list[tuple[date, str, int, int, int]]] = {}
    for tz in set(zones.values()):
        calendar[tz] = []
        for day in days:
            start, end = day_bounds(day, zoneinfo.ZoneInfo(tz))
            length = len(range(start, end, HOUR_MS))
            begun = min(length, max(0, -(-(now_ms - start) // HOUR_MS)))
            calendar[tz].append((day, day.isoformat(), end, length, begun))
    decoded: dict[tuple[str, int], tuple[HourState, ...]] = {}
    judged: dict[tuple[tuple[HourState, ...], bool, bool], DayState] = {}
    for store_id, tz in zones.items():
        newest_hour = newest.get(store_id)
        for day, text, end, length, begun in calendar[tz]:
            codes, updated = rows.get((store_id, text), ("-" * length, None))
            states = decoded.get((codes, begun))
            if states is None:
                states = decoded[(codes, begun)] = _hours(codes, begun)
            later = newest_hour is not None and newest_hour + HOUR_MS >= end
            key = (states, now_ms < end, later)
            state = judged.get(key)
            if state is None:
                state = judged[key] = _day_state(
                    list(states), end, newest_hour if later else None, now_ms
                )
            ledger.days[(store_id, day)] = DayLedger(store_id, day, state, states, updated)
    return ledger
