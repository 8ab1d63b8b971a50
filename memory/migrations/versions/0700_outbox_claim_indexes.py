"""Outbox claim indexes: partial indexes over claimable rows only; autovacuum tuned for churn on PostgreSQL.

Claiming due webhook deliveries (and undispatched events) used full indexes whose hot ranges fill
with dead entries as rows change status; after ~64k updates one claim with nothing due took ~6 ms
on PostgreSQL. The claimable rows are few at any time, so the new indexes cover only them:

- ``ix_webhook_deliveries_claimable`` (next_attempt_at, id) WHERE status IN ('pending', 'failing',
  'delivering') replaces ``ix_webhook_deliveries_due`` (status, next_attempt_at);
- ``ix_events_undispatched`` (id) WHERE dispatched_at IS NULL replaces ``ix_events_dispatched_at``.

On PostgreSQL both tables also get per-table autovacuum settings so their dead rows and index
entries are vacuumed after a small fraction of the table changes, not the default 20%.

Revision ID: 0700
Revises: 0600
Create Date: 2026-11-27 03:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0700"
down_revision = "0600"
branch_labels = None
depends_on = None

CLAIMABLE = "status IN ('pending', 'failing', 'delivering')"
UNDISPATCHED = "dispatched_at IS NULL"
# Vacuum after 1,000 + 2% of the rows changed (default: 50 + 20%), and analyze as often.
AUTOVACUUM = ("autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, "
              "autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02")
RESET = ("autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
         "autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor")
TABLES = ("webhook_deliveries", "events")


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
        batch_op.create_index("ix_webhook_deliveries_claimable", ["next_attempt_at", "id"], unique=False,
                              postgresql_where=sa.text(CLAIMABLE), sqlite_where=sa.text(CLAIMABLE))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_dispatched_at")
        batch_op.create_index("ix_events_undispatched", ["id"], unique=False,
                              postgresql_where=sa.text(UNDISPATCHED), sqlite_where=sa.text(UNDISPATCHED))
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET ({AUTOVACUUM})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} RESET ({RESET})")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_undispatched")
        batch_op.create_index("ix_events_dispatched_at", ["dispatched_at"], unique=False)
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_claimable")
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
