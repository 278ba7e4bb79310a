"""The dashboard's accounts, sessions and settings, and the POS hours.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the accounts' four tables and ``pos_hours``."""
    op.create_table(
        "hub_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "hub_user_regions",
        sa.Column("username", sa.String(64), sa.ForeignKey("hub_users.username"), primary_key=True),
        sa.Column("region_id", sa.String(64), sa.ForeignKey("regions.id"), primary_key=True),
    )
    op.create_table(
        "hub_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), sa.ForeignKey("hub_users.username"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_hub_sessions_username", "hub_sessions", ["username"])
    op.create_table(
        "hub_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "pos_hours",
        sa.Column("store_id", sa.String(64), sa.ForeignKey("stores.id"), primary_key=True),
        sa.Column("hour_ms", sa.BigInteger, primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("transactions", sa.BigInteger, nullable=False),
        sa.Column("sales", sa.Float, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_pos_hours_store_day", "pos_hours", ["store_id", "day"])
