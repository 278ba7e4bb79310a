"""``day_totals``: the comparison's sums per store-day, kept where their sources change.

One row per store and local day that has footfall, dwell, queue or POS data: visitors
(``in`` crossings of every line), dwell visits and seconds, people served and their total
wait, POS transactions and sales (NULL when the day has no POS hours). :func:`refresh`
recomputes the rows of one store's days from the daily rollups and ``pos_hours`` in one
``DELETE`` and one ``INSERT … SELECT``; ingest calls it for the days a batch touched (in
the batch's transaction, after the daily rollups), the POS import for the days it
stored, and migration 0009 for everything that was there before.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, and_, delete, func, select, true, union

from cloud_hub.schema import DAILY, day_totals, pos_hours


def _where(table: Table, store_id: str | None, first: date | None, last: date | None) -> Any:
    clauses: list[ColumnElement[bool]] = []
    if store_id is not None:
        clauses.append(table.c.store_id == store_id)
    if first is not None:
        clauses.append(table.c.day >= first.isoformat())
    if last is not None:
        clauses.append(table.c.day <= last.isoformat())
    return and_(true(), *clauses)


def refresh(
    conn: Connection,
    store_id: str | None = None,
    first: date | None = None,
    last: date | None = None,
) -> None:
    """Recompute the ``day_totals`` of a store's days ``first..last`` (None: no bound).

    Args:
        conn: The transaction that changed the sources.
        store_id: The store (None: every store).
        first: The first local day (None: from the beginning).
        last: The last local day (None: to the end).
    """
    foot, dwell, queue = DAILY["agg_footfall"], DAILY["agg_dwell"], DAILY["agg_queue"]
    sources = (foot, dwell, queue, pos_hours)
    keys = union(
        *(select(t.c.store_id, t.c.day).where(_where(t, store_id, first, last)) for t in sources)
    ).subquery()

    def summed(table: Table, *columns: str, extra: ColumnElement[bool] | None = None) -> Any:
        where = _where(table, store_id, first, last)
        return (
            select(table.c.store_id, table.c.day,
                   *(func.sum(table.c[c]).label(c) for c in columns))
            .where(where if extra is None else and_(where, extra))
            .group_by(table.c.store_id, table.c.day)
            .subquery()
        )  # fmt: skip

    visitors = summed(foot, "sum_count", extra=foot.c.direction == "in")
    dwelled = summed(dwell, "sum_visits", "sum_total_s")
    queued = summed(queue, "sum_served", "sum_wait_total_s")
    sold = summed(pos_hours, "transactions", "sales")
    joined: Any = keys
    for part in (visitors, dwelled, queued, sold):
        joined = joined.outerjoin(
            part, and_(part.c.store_id == keys.c.store_id, part.c.day == keys.c.day)
        )
    query = select(
        keys.c.store_id,
        keys.c.day,
        func.coalesce(visitors.c.sum_count, 0),
        func.coalesce(dwelled.c.sum_visits, 0),
        func.coalesce(dwelled.c.sum_total_s, 0.0),
        func.coalesce(queued.c.sum_served, 0),
        func.coalesce(queued.c.sum_wait_total_s, 0.0),
        sold.c.transactions,
        sold.c.sales,
    ).select_from(joined)
    conn.execute(delete(day_totals).where(_where(day_totals, store_id, first, last)))
    conn.execute(day_totals.insert().from_select([c.name for c in day_totals.columns], query))
