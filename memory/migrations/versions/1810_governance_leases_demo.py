"""Governance: audit leases with an owner, one open audit per plugin version, demo partners.

- ``governance_audits.lease_owner``: the auditor holding a running audit's lease; only it records the
  outcome (a crashed auditor's lease expires and another takes the audit over);
- ``uq_governance_audits_open``: at most one queued or running audit per plugin version, so two
  schedulers or triggers never queue (and audit) the same version twice. Older duplicates are closed
  as errors first;
- ``partners.demo``: demo partners (make run's seed) are audited but never enforced against.

Revision ID: 1810
Revises: 1800
Create Date: 2026-12-06 18:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1810"
down_revision = "1800"
branch_labels = None
depends_on = None

OPEN_AUDIT = "status IN ('queued', 'running')"


def upgrade() -> None:
    with op.batch_alter_table("governance_audits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
    op.execute(sa.text(
        "UPDATE governance_audits SET status = 'error', error = 'duplicate of an earlier open audit', "
        "lease_until = NULL WHERE status IN ('queued', 'running') AND EXISTS (SELECT 1 FROM governance_audits o "
        "WHERE o.plugin_id = governance_audits.plugin_id AND o.version = governance_audits.version "
        "AND o.status IN ('queued', 'running') AND o.id < governance_audits.id)"))
    with op.batch_alter_table("governance_audits", schema=None) as batch_op:
        batch_op.create_index("uq_governance_audits_open", ["plugin_id", "version"], unique=True,
                              postgresql_where=sa.text(OPEN_AUDIT), sqlite_where=sa.text(OPEN_AUDIT))
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("demo", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("demo")
    with op.batch_alter_table("governance_audits", schema=None) as batch_op:
        batch_op.drop_index("uq_governance_audits_open")
        batch_op.drop_column("lease_owner")
