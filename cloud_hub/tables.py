"""The dashboard's tables as display strings, so a page and its CSV show the same numbers.

Each table is a header and rows of already formatted cells (:func:`cell`: integers as
they are, other numbers to two decimals, ratios as percentages to one decimal, an empty
cell where a number cannot be computed); the page renders these strings and the CSV
download writes them unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cloud_hub.compare import Comparison, DayFacts, Metrics, StoreRow
from cloud_hub.ledger import DayLedger, Ledger

LEAGUE_COLUMNS = (
    "store", "name", "region", "days_counted", "days_excluded", "days_partial", "visitors",
    "visitors_per_m2", "visitors_per_open_hour", "dwell_s", "queue_wait_s", "conversion_pct",
    "sales_per_visitor", "avg_transaction", "vs_region_pct", "vs_last_week_pct",
    "vs_last_year_pct",
)  # fmt: skip
LEDGER_COLUMNS = (
    "store", "day", "state", "hours_complete", "hours_partial", "hours_missing",
    "hours_not_received", "updated_utc", "last_batch_utc",
)  # fmt: skip
DAILY_COLUMNS = ("day", "state", "visitors", "dwell_s", "queue_wait_s", "transactions", "sales")


@dataclass
class Table:
    """A header and rows of display strings (``links``: the store id of each row, if any)."""

    columns: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)
    links: list[str | None] = field(default_factory=list)

    def pages(self, size: int) -> int:
        """How many pages of ``size`` rows the table fills (at least one)."""
        return max(1, -(-len(self.rows) // size))

    def page(self, number: int, size: int) -> Pager:
        """Page ``number`` (1-based, at most :meth:`pages`) of pages of ``size`` rows."""
        count = self.pages(size)
        first = (min(max(number, 1), count) - 1) * size
        window = Table(self.columns, self.rows[first : first + size],
                       self.links[first : first + size])  # fmt: skip
        return Pager(window, first // size + 1, count, first + 1, first + len(window.rows),
                     len(self.rows))  # fmt: skip

    def csv(self) -> str:
        """The table as CSV text."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()


@dataclass(frozen=True)
class Pager:
    """One page of a long table: its rows, page ``number`` of ``count``, rows ``first..last``."""

    table: Table
    number: int
    count: int
    first: int
    last: int
    total: int


def cell(value: float | int | None, percent: bool = False) -> str:
    """A number as the page and the CSV show it."""
    if value is None:
        return ""
    if percent:
        return f"{value * 100:.1f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def utc(ms: int | None) -> str:
    """Epoch ms as ``YYYY-MM-DD HH:MM`` UTC (empty for None)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _metrics(m: Metrics) -> list[str]:
    s = m.sums
    return [
        cell(s.days), cell(s.excluded), cell(s.partial), cell(s.visitors), cell(m.per_m2),
        cell(m.per_open_hour), cell(m.dwell_s), cell(m.queue_wait_s), cell(m.conversion, True),
        cell(m.sales_per_visitor), cell(m.avg_transaction), cell(m.vs_region, True),
        cell(m.vs_last_week, True), cell(m.vs_last_year, True),
    ]  # fmt: skip


def league(result: Comparison, sort: str) -> Table:
    """One row per store, sorted by ``sort`` (a column; descending, empty cells last)."""
    table = Table(LEAGUE_COLUMNS)
    by_id = {s.id: s for s in result.stores}
    rows = [[s.id, s.name, s.region_id, *_metrics(result.by_store[s.id])] for s in result.stores]
    if sort in LEAGUE_COLUMNS[3:]:
        index = LEAGUE_COLUMNS.index(sort)
        rows.sort(key=lambda r: (r[index] == "", -float(r[index] or 0), r[0]))
    table.rows = rows
    table.links = [by_id[r[0]].id for r in rows]
    return table


def regions(result: Comparison) -> Table:
    """One row per region: its stores' sums (no "vs" comparisons: those cells are empty)."""
    table = Table(("region", *LEAGUE_COLUMNS[3:]))
    for region_id, metrics in sorted(result.by_region.items()):
        table.rows.append([region_id, *_metrics(metrics)])
        table.links.append(None)
    return table


def _hours(day: DayLedger) -> list[str]:
    counts = day.hour_counts()
    return [str(counts.get(k, 0)) for k in ("complete", "partial", "missing", "not_received")]


def ledger_table(ledger: Ledger, stores: Sequence[StoreRow]) -> Table:
    """One row per store-day."""
    table = Table(LEDGER_COLUMNS)
    for store in stores:
        for day in ledger.of(store.id):
            table.rows.append([
                store.id, day.day.isoformat(), day.state, *_hours(day), utc(day.updated_ms),
                utc(ledger.last_batch_ms.get(store.id)),
            ])  # fmt: skip
            table.links.append(store.id)
    return table


def daily(result: Comparison, store: StoreRow) -> Table:
    """One row per day of one store (arriving and excluded days too, with their state)."""
    table = Table(DAILY_COLUMNS)
    facts = result.facts
    for day in result.days:
        entry = result.ledger.days[(store.id, day)]
        got = facts.get((store.id, day.isoformat()), DayFacts())
        table.rows.append([
            day.isoformat(), entry.state, cell(got.visitors),
            cell(got.dwell_s / got.dwell_visits if got.dwell_visits else None),
            cell(got.wait_s / got.served if got.served else None),
            cell(got.transactions), cell(got.sales if got.transactions is not None else None),
        ])  # fmt: skip
    return table
