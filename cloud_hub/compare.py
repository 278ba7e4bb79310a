"""Multi-store comparison: sums per store-day from the daily rollups, metrics, league tables.

Every number comes from the ``<table>_day`` rollups and ``pos_hours`` summed by day
(never the 5-minute facts), over the store-days the ledger counts
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

from sqlalchemy import ColumnElement, Connection, Table, func, select

from cloud_hub.ledger import Ledger, compute
from cloud_hub.schema import DAILY, pos_hours, stores

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
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


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


@dataclass
class DayFacts:
    """One store-day's sums from the daily rollups and POS hours."""

    visitors: int = 0
    dwell_visits: int = 0
    dwell_s: float = 0.0
    served: int = 0
    wait_s: float = 0.0
    transactions: int | None = None
    sales: float = 0.0


def _summed(
    conn: Connection,
    table: Table,
    columns: list[str],
    ids: list[str],
    days: list[str],
    *where: ColumnElement[bool],
) -> dict[tuple[str, str], list[float]]:
    """Per (store, day) the sums of ``columns`` of a table keyed by ``store_id`` and ``day``."""
    query = (
        select(table.c.store_id, table.c.day, *(func.sum(table.c[c]) for c in columns))
        .where(table.c.store_id.in_(ids), table.c.day.in_(days), *where)
        .group_by(table.c.store_id, table.c.day)
    )
    return {(r[0], r[1]): [v or 0 for v in r[2:]] for r in conn.execute(query)}


def day_facts(
    conn: Connection, ids: list[str], days: list[date]
) -> dict[tuple[str, str], DayFacts]:
    """Per (store, ISO day) the sums of the daily rollups and of ``pos_hours``."""
    texts = sorted({d.isoformat() for d in days})
    facts: dict[tuple[str, str], DayFacts] = defaultdict(DayFacts)
    if not ids or not texts:
        return facts
    foot, dwell, queue = DAILY["agg_footfall"], DAILY["agg_dwell"], DAILY["agg_queue"]
    for key, (count,) in _summed(
        conn, foot, ["sum_count"], ids, texts, foot.c.direction == "in"
    ).items():
        facts[key].visitors = int(count)
    for key, (visits, total) in _summed(
        conn, dwell, ["sum_visits", "sum_total_s"], ids, texts
    ).items():
        facts[key].dwell_visits, facts[key].dwell_s = int(visits), float(total)
    for key, (served, wait) in _summed(
        conn, queue, ["sum_served", "sum_wait_total_s"], ids, texts
    ).items():
        facts[key].served, facts[key].wait_s = int(served), float(wait)
    for key, (transactions, sales) in _summed(
        conn, pos_hours, ["transactions", "sales"], ids, texts
    ).items():
        facts[key].transactions, facts[key].sales = int(transactions), float(sales)
    return facts
    foot, dwell, queue = DAILY["agg_footfall"], DAILY["agg_dwell"], DAILY["agg_queue"]
    for r in conn.execute(
        select(foot.c.store_id, foot.c.day, func.sum(foot.c.sum_count))
        .where(foot.c.store_id.in_(ids), foot.c.day.in_(texts), foot.c.direction == "in")
        .group_by(foot.c.store_id, foot.c.day)
    ):
        facts[(r[0], r[1])].visitors = int(r[2] or 0)
    for r in conn.execute(
        select(dwell.c.store_id, dwell.c.day, func.sum(dwell.c.sum_visits),
               func.sum(dwell.c.sum_total_s))
        .where(dwell.c.store_id.in_(ids), dwell.c.day.in_(texts))
        .group_by(dwell.c.store_id, dwell.c.day)
    ):  # fmt: skip
        facts[(r[0], r[1])].dwell_visits, facts[(r[0], r[1])].dwell_s = int(r[2] or 0), r[3] or 0.0
    for r in conn.execute(
        select(queue.c.store_id, queue.c.day, func.sum(queue.c.sum_served),
               func.sum(queue.c.sum_wait_total_s))
        .where(queue.c.store_id.in_(ids), queue.c.day.in_(texts))
        .group_by(queue.c.store_id, queue.c.day)
    ):  # fmt: skip
        facts[(r[0], r[1])].served, facts[(r[0], r[1])].wait_s = int(r[2] or 0), r[3] or 0.0
    for r in conn.execute(
        select(pos_hours.c.store_id, pos_hours.c.day, func.sum(pos_hours.c.transactions),
               func.sum(pos_hours.c.sales))
        .where(pos_hours.c.store_id.in_(ids), pos_hours.c.day.in_(texts))
        .group_by(pos_hours.c.store_id, pos_hours.c.day)
    ):  # fmt: skip
        facts[(r[0], r[1])].transactions, facts[(r[0], r[1])].sales = int(r[2]), float(r[3])
    return facts


def _sums(store: StoreRow, days: list[date], ledger: Ledger,
          facts: dict[tuple[str, str], DayFacts]) -> Sums:  # fmt: skip
    sums = Sums(area_m2=store.area_m2 or 0.0)
    for day in days:
        entry = ledger.days[(store.id, day)]
        if not entry.counted:
            sums.excluded += 1
            continue
        got = facts.get((store.id, day.isoformat()), DayFacts())
        sums.days += 1
        sums.partial += entry.state == "partial"
        sums.visitors += got.visitors
        sums.open_hours += store.open_hours(day)
        sums.dwell_visits += got.dwell_visits
        sums.dwell_s += got.dwell_s
        sums.served += got.served
        sums.wait_s += got.wait_s
        if got.transactions is not None:
            sums.pos_visitors += got.visitors
            sums.transactions += got.transactions
            sums.sales += got.sales
    return sums


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
    result.facts = dict(facts)
    result.ledger = Ledger(
        {k: v for k, v in full.days.items() if k[1] in set(days)}, full.last_batch_ms
    )
    for store in rows:
        metrics = Metrics(_sums(store, days, full, facts))
        metrics.vs_last_week = _change(
            metrics.per_open_hour, Metrics(_sums(store, last_week, full, facts)).per_open_hour
        )
        metrics.vs_last_year = _change(
            metrics.per_open_hour, Metrics(_sums(store, last_year, full, facts)).per_open_hour
        )
        result.by_store[store.id] = metrics
        region = result.by_region.setdefault(store.region_id, Metrics(Sums()))
        region.sums += metrics.sums
    for store in rows:
        peers = [
            value for s in rows
            if s.region_id == store.region_id and (value := result.by_store[s.id].per_open_hour)
            is not None
        ]  # fmt: skip
        mean = sum(peers) / len(peers) if peers else None
        result.by_store[store.id].vs_region = _change(result.by_store[store.id].per_open_hour, mean)
    return result
