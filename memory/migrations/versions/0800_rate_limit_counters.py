"""Rate-limit counters shared by every API process (sign-in throttling, later API rate limits).

One row per key: a fixed-window count and when the window ends (Unix seconds); the ``limits``
storage in ``tools/shared/ratelimit.py`` reads and writes it with one upsert per hit.

Revision ID: 0800
Revises: 0700
Create Date: 2026-12-01 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0800"
down_revision = "0700"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counters")),
    )
    with op.batch_alter_table("rate_limit_counters", schema=None) as batch_op:
        batch_op.create_index("ix_rate_limit_counters_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rate_limit_counters", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_limit_counters_expires_at")
    op.drop_table("rate_limit_counters")
