"""The registry, idempotency and replay tables, the 5-minute facts with their rollups, the ledger.

A frozen copy of the schema as first released (``cloud_hub/schema.py`` is the living
one; ``tests/test_hub_schema.py`` checks that migrating gives exactly it). On PostgreSQL
the facts are partitioned by month and this creates the current and the next two
months' partitions.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from cloud_hub.partitions import AHEAD_MONTHS, create_month, months_from

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Each table: natural key after store_id, then value columns; "name:type", "?" = nullable;
# i BIGINT, r FLOAT, s VARCHAR(64), t TEXT.
_FACTS = {
    "agg_windows": (
        ["bucket_ms:i"],
        ["computed_at_ms:i", "coverage:r", "status:s", "customers:i", "staff:i"],
    ),
    "agg_footfall": (["bucket_ms:i", "line_id:s", "direction:s"], ["count:i"]),
    "agg_occupancy": (["bucket_ms:i", "zone_id:s"], ["mean:r", "max:i"]),
    "agg_dwell": (
        ["bucket_ms:i", "zone_id:s"],
        ["visits:i", "total_s:r", "p10_s:r?", "p50_s:r?", "p90_s:r?", "hist:t"],
    ),
    "agg_queue": (
        ["bucket_ms:i", "zone_id:s"],
        [
            "joined:i",
            "served:i",
            "abandoned:i",
            "wait_total_s:r",
            "mean_wait_s:r?",
            "p90_wait_s:r?",
            "mean_len:r",
            "max_len:i",
            "predicted_mae_s:r?",
        ],
    ),
    "agg_transitions": (["bucket_ms:i", "from_zone:s", "to_zone:s"], ["count:i"]),
    "agg_heatmap": (["bucket_ms:i", "cell_x:i", "cell_y:i"], ["person_s:r", "people:i"]),
    "agg_funnel": (["bucket_ms:i", "step:i"], ["kind:s", "people:i"]),
}
# The rollups' value columns (all nullable), after store_id, the hour or day, the
# dimensions and buckets.
_ROLLUPS = {
    "agg_windows": ["sum_coverage:r", "sum_customers:i", "sum_staff:i"],
    "agg_footfall": ["sum_count:i"],
    "agg_occupancy": ["sum_mean:r", "max_max:i"],
    "agg_dwell": ["sum_visits:i", "sum_total_s:r"],
    "agg_queue": [
        "sum_joined:i",
        "sum_served:i",
        "sum_abandoned:i",
        "sum_wait_total_s:r",
        "sum_mean_len:r",
        "max_max_len:i",
    ],
    "agg_transitions": ["sum_count:i"],
    "agg_heatmap": ["sum_person_s:r", "max_people:i"],
    "agg_funnel": ["sum_people:i", "max_kind:s"],
}
_LEDGER_COUNTS = ("buckets", "complete", "partial", "missing")
# d VARCHAR(10): a local date
_TYPES: dict[str, Any] = {
    "i": sa.BigInteger,
    "r": sa.Float,
    "s": lambda: sa.String(64),
    "t": sa.Text,
    "d": lambda: sa.String(10),
}


def _column(spec: str, primary_key: bool = False, nullable: bool = False) -> sa.Column[Any]:
    name, kind = spec.rstrip("?").split(":")
    return sa.Column(
        name,
        _TYPES[kind](),
        primary_key=primary_key,
        nullable=primary_key is False and (nullable or spec.endswith("?")),
    )


def _store_id() -> sa.Column[Any]:
    return sa.Column("store_id", sa.String(64), primary_key=True)


def upgrade() -> None:
    """Create every table (and, on PostgreSQL, the first months' partitions)."""
    op.create_table(
        "regions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "stores",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("region_id", sa.String(64), sa.ForeignKey("regions.id"), nullable=False),
        sa.Column("area_m2", sa.Float, nullable=True),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("opening_hours", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "store_secrets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.String(64), sa.ForeignKey("stores.id"), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_store_secrets_store_id", "store_secrets", ["store_id"])
    op.create_table(
        "applied_batches",
        sa.Column("store_id", sa.String(64), sa.ForeignKey("stores.id"), primary_key=True),
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("applied_rows", sa.Integer, nullable=False),
    )
    op.create_table(
        "seen_deliveries",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("msg_id", sa.String(128), primary_key=True),
        sa.Column("timestamp_s", sa.BigInteger, primary_key=True),
    )
    op.create_index("ix_seen_deliveries_timestamp_s", "seen_deliveries", ["timestamp_s"])
    op.create_table(
        "ledger_hours",
        _store_id(),
        sa.Column("hour_ms", sa.BigInteger, primary_key=True),
        *(sa.Column(n, sa.Integer, nullable=False) for n in _LEDGER_COUNTS),
        sa.Column("first_received_ms", sa.BigInteger, nullable=False),
        sa.Column("last_received_ms", sa.BigInteger, nullable=False),
    )
    for table, (key, values) in _FACTS.items():
        op.create_table(
            f"{table}_5m",
            _store_id(),
            *(_column(spec, primary_key=True) for spec in key),
            *(_column(spec) for spec in values),
            sa.Column("rev", sa.BigInteger, nullable=False),
            sa.Column("received_ms", sa.BigInteger, nullable=False),
            postgresql_partition_by="RANGE (bucket_ms)",
        )
        for grain, when in (("hour", "hour_ms:i"), ("day", "day:d")):
            op.create_table(
                f"{table}_{grain}",
                _store_id(),
                _column(when, primary_key=True),
                *(_column(spec, primary_key=True) for spec in key[1:]),
                sa.Column("buckets", sa.Integer, nullable=False),
                *(_column(spec, nullable=True) for spec in _ROLLUPS[table]),
            )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        now = datetime.now(UTC)
        for year, month in months_from(now.year, now.month, 1 + AHEAD_MONTHS):
            create_month(bind, year, month, [f"{table}_5m" for table in _FACTS])
