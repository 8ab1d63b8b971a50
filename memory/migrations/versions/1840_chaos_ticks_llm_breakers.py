"""Chaos round two: scheduler ticks that finished, and the LLM endpoints' circuit breakers.

- ``scheduler_ticks.completed_at``: set when a tick's work finished; a tick claimed by a leader that
  died (its epoch is older than the lease's) and never completed is re-run once by the next leader,
  which records ``taken_over_at`` and the ``taken_over_from`` holder. Existing ticks count as completed;
- ``llm_breakers``: one circuit breaker per LLM endpoint (closed, open, half_open), shared by every
  process through the database.

Revision ID: 1840
Revises: 1810
Create Date: 2026-12-06 18:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1840"
down_revision = "1810"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scheduler_ticks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("taken_over_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("taken_over_from", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_scheduler_ticks_completed_at", ["completed_at"])
    op.execute(sa.text("UPDATE scheduler_ticks SET completed_at = started_at"))
    op.create_table(
        "llm_breakers",
        sa.Column("endpoint", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint"),
    )


def downgrade() -> None:
    op.drop_table("llm_breakers")
    with op.batch_alter_table("scheduler_ticks", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduler_ticks_completed_at")
        batch_op.drop_column("taken_over_from")
        batch_op.drop_column("taken_over_at")
        batch_op.drop_column("completed_at")
