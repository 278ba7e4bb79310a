"""Staged rollouts: a rollout of a release version, its groups, each store's outcome.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``rollouts``, ``rollout_groups`` and ``rollout_stores``."""
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("max_failure_rate", sa.Float, nullable=False),
        sa.Column("soak_min", sa.Float, nullable=False),
        sa.Column("forecast_check", sa.Boolean, nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rollout_groups",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "rollout_stores",
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("store_id", sa.String(64), sa.ForeignKey("stores.id"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("running", sa.String(64), nullable=True),
        sa.Column("reported_ms", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    """Drop the rollouts' tables."""
    for table in ("rollout_stores", "rollout_groups", "rollouts"):
        op.drop_table(table)
