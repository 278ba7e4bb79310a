"""Multi-store comparison: sums per store-day from the daily rollups, metrics, league tables.

Every number comes from ``day_totals`` (the ``<table>_day`` rollups and ``pos_hours``
summed by store-day at ingest; never the 5-minute facts), over the store-days the ledger counts
(:data:`cloud_hub.ledger.COUNTED`: complete and partial; arriving, not received and
missing days are excluded and counted apart). Visitors are the ``in`` crossings of every
line; dwell is total dwell seconds over visits; queue wait is total wait over people
served; conversion is POS transactions over the visitors of the days that have POS
data, with sales per visitor and the average transaction value. Per m² divides by the
store's floor area, per opening hour by its opening hours on the counted days (24 a
day when it has none set). A region's row sums its stores' numerators and
denominators. Comparisons use visitors per opening hour: against the region's stores'
mean, and against the same days shifted back 7 days (same weekday last week) and 364
days (same weekday last year), each with its own ledger.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Final

from sqlalchemy import Connection, select

from cloud_hub.ledger import COUNTED, Ledger, compute
from cloud_hub.schema import day_totals, stores

WEEK: Final = timedelta(days=7)
YEAR: Final = timedelta(days=364)  # 52 weeks: the same weekday
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"\s*([a-z]{3})(?:-([a-z]{3}))?\s+(\d{1,2})-(\d{1,2})\s*")


class OpeningHoursError(ValueError):
    """An opening-hours text that cannot be read (the message says where)."""


def parse_opening_hours(text: str) -> list[int]:
    """``"mon-fri 9-20, sat 9-18"`` → hours open per weekday, Monday first (unnamed days: 0).

    Raises:
        OpeningHoursError: A part is not ``DAY[-DAY] HH-HH`` with 0 ≤ open < close ≤ 24.
    """
    hours = [0] * 7
    for part in text.lower().split(","):
        found = _SPEC.fullmatch(part)
        if not found or found[1] not in _DAYS or (found[2] and found[2] not in _DAYS):
            raise OpeningHoursError(f"opening hours {part.strip()!r}: write e.g. 'mon-fri 9-20'")
        first, last = _DAYS.index(found[1]), _DAYS.index(found[2] or found[1])
        opens, closes = int(found[3]), int(found[4])
        if not 0 <= opens < closes <= 24 or last < first:
            raise OpeningHoursError(f"opening hours {part.strip()!r}: need open < close ≤ 24")
        for weekday in range(first, last + 1):
            hours[weekday] = closes - opens
    return hours


@dataclass(frozen=True)
class StoreRow:
    """A store as the comparison needs it."""

    id: str
    name: str
    region_id: str
    tz: str
    area_m2: float | None
    weekly_hours: tuple[int, ...] | None  # per weekday, Monday first; None: not set

    def open_hours(self, day: date) -> int:
        """Hours open on ``day`` (24 when no opening hours are set)."""
        return 24 if self.weekly_hours is None else self.weekly_hours[day.weekday()]


def load_stores(conn: Connection, ids: Iterable[str]) -> list[StoreRow]:
    """The stores with these ids (by region, id)."""
    rows = conn.execute(
        select(stores)
        .where(stores.c.id.in_(sorted(set(ids))))
        .order_by(stores.c.region_id, stores.c.id)
    )
    return [
        StoreRow(r.id, r.name, r.region_id, r.tz, r.area_m2,
                 tuple(json.loads(r.opening_hours)) if r.opening_hours else None)
        for r in rows
    ]  # fmt: skip


@dataclass
class Sums:
    """Numerators and denominators of one store (or region) over the counted days."""

    days: int = 0
    excluded: int = 0
    partial: int = 0
    visitors: int = 0
    open_hours: int = 0
    area_m2: float = 0.0
    dwell_visits: int = 0
    dwell_s: float = 0.0
    served: int = 0
    wait_s: float = 0.0
    pos_visitors: int = 0
    transactions: int = 0
    sales: float = 0.0

    def __iadd__(self, other: Sums) -> Sums:
        for name in _SUM_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


_SUM_FIELDS: Final = tuple(f.name for f in fields(Sums))


def _ratio(top: float, bottom: float) -> float | None:
    return top / bottom if bottom else None


@dataclass
class Metrics:
    """The comparison's numbers of one store or region (None: not computable)."""

    sums: Sums
    vs_region: float | None = None
    vs_last_week: float | None = None
    vs_last_year: float | None = None

    @property
    def per_m2(self) -> float | None:
        """Visitors per m² of floor over the counted days."""
        return _ratio(self.sums.visitors, self.sums.area_m2)

    @property
    def per_open_hour(self) -> float | None:
        """Visitors per opening hour."""
        return _ratio(self.sums.visitors, self.sums.open_hours)

    @property
    def dwell_s(self) -> float | None:
        """Mean dwell, seconds."""
        return _ratio(self.sums.dwell_s, self.sums.dwell_visits)

    @property
    def queue_wait_s(self) -> float | None:
        """Mean queue wait of those served, seconds."""
        return _ratio(self.sums.wait_s, self.sums.served)

    @property
    def conversion(self) -> float | None:
        """Transactions per visitor (days with POS data)."""
        return _ratio(self.sums.transactions, self.sums.pos_visitors)

    @property
    def sales_per_visitor(self) -> float | None:
        """Sales per visitor (days with POS data)."""
        return _ratio(self.sums.sales, self.sums.pos_visitors)

    @property
    def avg_transaction(self) -> float | None:
        """Average transaction value."""
        return _ratio(self.sums.sales, self.sums.transactions)


@dataclass(slots=True)
class DayFacts:
    """One store-day's sums from the daily rollups and POS hours."""

    visitors: int = 0
    dwell_visits: int = 0
    dwell_s: float = 0.0
    served: int = 0
    wait_s: float = 0.0
    transactions: int | None = None
    sales: float = 0.0


_NO_FACTS: Final = DayFacts()


def day_facts(
    conn: Connection, ids: list[str], days: list[date]
) -> dict[tuple[str, str], DayFacts]:
    """Per (store, ISO day) its ``day_totals`` row (the daily rollups' and POS sums)."""
    texts = sorted({d.isoformat() for d in days})
    facts: dict[tuple[str, str], DayFacts] = {}
    if not ids or not texts:
        return facts
    t = day_totals
    query = select(
        t.c.store_id, t.c.day, t.c.visitors, t.c.dwell_visits, t.c.dwell_s, t.c.served,
        t.c.wait_s, t.c.transactions, t.c.sales,
    ).where(t.c.store_id.in_(ids), t.c.day.in_(texts))  # fmt: skip
    for store_id, day, *values in conn.execute(query).all():
        visitors, dwell_visits, dwell_s, served, wait_s, transactions, sales = values
        facts[(store_id, day)] = DayFacts(
            visitors, dwell_visits, dwell_s, served, wait_s, transactions, sales or 0.0
        )
    return facts


def _sums(store: StoreRow, days: list[tuple[date, str]], ledger: Ledger,
          facts: dict[tuple[str, str], DayFacts]) -> Sums:  # fmt: skip
    """A store's sums over ``days`` (each with its ISO text), counted days only."""
    counted = excluded = partial = visitors = open_hours = dwell_visits = served = 0
    pos_visitors = transactions = 0
    dwell_s = wait_s = sales = 0.0
    entries, sid = ledger.days, store.id
    for day, text in days:
        state = entries[(sid, day)].state
        if state not in COUNTED:
            excluded += 1
            continue
        got = facts.get((sid, text), _NO_FACTS)
        counted += 1
        partial += state == "partial"
        visitors += got.visitors
        open_hours += store.open_hours(day)
        dwell_visits += got.dwell_visits
        dwell_s += got.dwell_s
        served += got.served
        wait_s += got.wait_s
        if got.transactions is not None:
            pos_visitors += got.visitors
            transactions += got.transactions
            sales += got.sales
    return Sums(
        days=counted, excluded=excluded, partial=partial, visitors=visitors,
        open_hours=open_hours, area_m2=store.area_m2 or 0.0, dwell_visits=dwell_visits,
        dwell_s=dwell_s, served=served, wait_s=wait_s, pos_visitors=pos_visitors,
        transactions=transactions, sales=sales,
    )  # fmt: skip


def _change(now: float | None, then: float | None) -> float | None:
    return None if now is None or not then else now / then - 1.0


@dataclass
class Comparison:
    """Per store and per region, the metrics over a period; the period's ledger."""

    days: list[date]
    stores: list[StoreRow]
    by_store: dict[str, Metrics] = field(default_factory=dict)
    by_region: dict[str, Metrics] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    facts: dict[tuple[str, str], DayFacts] = field(default_factory=dict)


def period(end: date, length: int) -> list[date]:
    """``length`` days ending with ``end``, oldest first."""
    return [end - timedelta(days=length - 1 - i) for i in range(length)]


def compare(conn: Connection, rows: list[StoreRow], days: list[date], now_ms: int) -> Comparison:
    """The comparison of ``rows`` over ``days`` (and the same days last week and last year)."""
    result = Comparison(days, rows)
    last_week, last_year = [d - WEEK for d in days], [d - YEAR for d in days]
    everything = sorted({*days, *last_week, *last_year})
    pairs = [(s.id, s.tz) for s in rows]
    full = compute(conn, pairs, everything, now_ms)
    facts = day_facts(conn, [s.id for s in rows], everything)
    result.facts = facts
    shown = set(days)
    result.ledger = Ledger(
        {k: v for k, v in full.days.items() if k[1] in shown}, full.last_batch_ms
    )
    keyed = [(d, d.isoformat()) for d in days]
    keyed_week = [(d, d.isoformat()) for d in last_week]
    keyed_year = [(d, d.isoformat()) for d in last_year]
    for store in rows:
        metrics = Metrics(_sums(store, keyed, full, facts))
        metrics.vs_last_week = _change(
            metrics.per_open_hour, Metrics(_sums(store, keyed_week, full, facts)).per_open_hour
        )
        metrics.vs_last_year = _change(
            metrics.per_open_hour, Metrics(_sums(store, keyed_year, full, facts)).per_open_hour
        )
        result.by_store[store.id] = metrics
        region = result.by_region.setdefault(store.region_id, Metrics(Sums()))
        region.sums += metrics.sums
    peers: dict[str, list[float]] = defaultdict(list)
    for store in rows:
        if (value := result.by_store[store.id].per_open_hour) is not None:
            peers[store.region_id].append(value)
    for store in rows:
        values = peers.get(store.region_id)
        mean = sum(values) / len(values) if values else None
        result.by_store[store.id].vs_region = _change(result.by_store[store.id].per_open_hour, mean)
    return result
