"""``day_totals``: the comparison's sums, one row per store-day, filled from what is there.

Small (one row per store-day), so not partitioned. Filled here by the function ingest and
the POS import keep it with (:func:`cloud_hub.day_totals.refresh`), over every store.

Revision ID: 0009
Revises: v0005_fleet
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cloud_hub.day_totals import refresh

revision = "0009"
down_revision = "v0005_fleet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``day_totals`` and fill it from the daily rollups and ``pos_hours``."""
    op.create_table(
        "day_totals",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        *(sa.Column(n, sa.BigInteger, nullable=False) for n in ("visitors", "dwell_visits")),
        sa.Column("dwell_s", sa.Float, nullable=False),
        sa.Column("served", sa.BigInteger, nullable=False),
        sa.Column("wait_s", sa.Float, nullable=False),
        sa.Column("transactions", sa.BigInteger),
        sa.Column("sales", sa.Float),
    )
    refresh(op.get_bind())
