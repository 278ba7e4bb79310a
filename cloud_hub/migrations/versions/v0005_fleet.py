"""The fleet: heartbeats (newest and a bounded history), ops alerts, store config versions.

Revision ID: v0005_fleet
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0005_fleet"
down_revision = "0004"
branch_labels = None
depends_on = None


def _store() -> sa.ForeignKey:
    return sa.ForeignKey("stores.id")


def upgrade() -> None:
    """Create ``box_heartbeats``, ``heartbeat_history``, ``fleet_alerts``, ``store_configs``."""
    op.create_table(
        "box_heartbeats",
        sa.Column("store_id", sa.String(64), _store(), primary_key=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("sent_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("software", sa.String(64), nullable=False),
        sa.Column("config_version", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "heartbeat_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.String(64), _store(), nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_heartbeat_history_store_received", "heartbeat_history", ["store_id", "received_ms"]
    )
    op.create_table(
        "fleet_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.String(64), _store(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raised_ms", sa.BigInteger, nullable=False),
        sa.Column("seen_ms", sa.BigInteger, nullable=True),
        sa.Column("cleared_ms", sa.BigInteger, nullable=True),
        sa.Column("raise_sent_ms", sa.BigInteger, nullable=True),
        sa.Column("clear_sent_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_fleet_alerts_store", "fleet_alerts", ["store_id", "cleared_ms"])
    op.create_table(
        "store_configs",
        sa.Column("store_id", sa.String(64), _store(), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("parent", sa.BigInteger, nullable=True),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
