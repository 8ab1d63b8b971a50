"""API usage metered per organisation, UTC day, key, mode, method and route template.

Written in batches by each API process (``tools/dev_portal/tiers.py``): additive upserts on the
unique row. The rate limits themselves use ``rate_limit_counters`` (migration 0800).

Revision ID: 1100
Revises: 1000
Create Date: 2026-12-05 21:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1100"
down_revision = "1000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key_prefix", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_usage")),
        sa.UniqueConstraint("org_id", "day", "key_prefix", "mode", "method", "route", name="uq_api_usage_row"),
    )


def downgrade() -> None:
    op.drop_table("api_usage")
