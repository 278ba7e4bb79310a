"""The ledger per store-day (``ledger_days``), filled from ``ledger_hours``; a store's last batch.

``ledger_days`` is small (one row per store-day: 182,500 a year for 500 stores), so it
is not partitioned. Existing ledger hours are summarised into it here with the same
function ingest uses (:func:`cloud_hub.ledger.day_row`), each store's hours by its own
time zone. The index on ``applied_batches (store_id, received_ms)`` makes a store's last
batch one index probe instead of a scan of all its batches.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from datetime import date, datetime

import sqlalchemy as sa
from alembic import op

from cloud_hub.ledger import LedgerHour, day_bounds, day_row

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``ledger_days`` and fill it; index each store's batches by arrival."""
    table = op.create_table(
        "ledger_days",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("hours", sa.String(32), nullable=False),
        *(sa.Column(n, sa.Integer, nullable=False) for n in ("complete", "partial", "missing")),
        sa.Column("first_received_ms", sa.BigInteger, nullable=False),
        sa.Column("last_received_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_applied_batches_store_received", "applied_batches", ["store_id", "received_ms"]
    )
    bind = op.get_bind()
    zones = {
        store_id: zoneinfo.ZoneInfo(tz)
        for store_id, tz in bind.execute(sa.text("SELECT id, tz FROM stores"))
    }
    by_day: dict[tuple[str, date], list[LedgerHour]] = defaultdict(list)
    for row in bind.execute(
        sa.text(
            "SELECT store_id, hour_ms, buckets, complete, missing, first_received_ms, "
            "last_received_ms FROM ledger_hours ORDER BY store_id, hour_ms"
        )
    ):
        tz = zones.get(row[0])
        if tz is not None:
            day = datetime.fromtimestamp(row[1] / 1000, tz).date()
            by_day[(row[0], day)].append(LedgerHour(*row[1:]))
    rows = [
        summary
        for (store_id, day), hours in by_day.items()
        if (summary := day_row(store_id, day, *day_bounds(day, zones[store_id]), hours))
    ]
    if rows:
        op.bulk_insert(table, rows)
