"""The alert summaries the boxes send (``agg_alerts``): 5-minute facts and their rollups.

A frozen copy, like 0001's. On PostgreSQL the facts get a partition for every month
the other facts have one for, and for the current and the next months.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from cloud_hub.partitions import AHEAD_MONTHS, create_month, months_from

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _key() -> list[sa.Column[str]]:
    return [sa.Column(name, sa.String(64), primary_key=True) for name in ("rule_id", "target")]


def upgrade() -> None:
    """Create ``agg_alerts_5m``, ``agg_alerts_hour`` and ``agg_alerts_day``."""
    op.create_table(
        "agg_alerts_5m",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("bucket_ms", sa.BigInteger, primary_key=True),
        *_key(),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(64), nullable=False),
        sa.Column("raised", sa.BigInteger, nullable=False),
        sa.Column("active_s", sa.Float, nullable=False),
        sa.Column("rev", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        postgresql_partition_by="RANGE (bucket_ms)",
    )
    for grain, when in (("hour", sa.BigInteger), ("day", lambda: sa.String(10))):
        op.create_table(
            f"agg_alerts_{grain}",
            sa.Column("store_id", sa.String(64), primary_key=True),
            sa.Column("hour_ms" if grain == "hour" else "day", when(), primary_key=True),
            *_key(),
            sa.Column("buckets", sa.Integer, nullable=False),
            sa.Column("sum_raised", sa.BigInteger, nullable=True),
            sa.Column("sum_active_s", sa.Float, nullable=True),
        )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        now = datetime.now(UTC)
        months = set(months_from(now.year, now.month, 1 + AHEAD_MONTHS))
        for (name,) in bind.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'agg_windows_5m'"
            )
        ):
            found = re.fullmatch(r"agg_windows_5m_y(\d{4})m(\d{2})", name)
            if found:
                months.add((int(found[1]), int(found[2])))
        for year, month in sorted(months):
            create_month(bind, year, month, ["agg_alerts_5m"])
