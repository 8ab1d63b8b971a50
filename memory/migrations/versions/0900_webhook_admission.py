"""Webhook admission control: shed fan-out is recorded in ``webhook_deferrals``; an index for the check.

Under overload the partner webhook fan-out sheds new deliveries (an organisation over its backlog,
or an endpoint lagging) instead of queueing them without bound. Shed work is recorded, one row per
install and minute of events (the event id range and a count), and replayed on request.
``ix_webhook_deliveries_org_claimable`` (org_id, install_id, next_attempt_at) over claimable rows
only lets the admission check count an organisation's unfinished due deliveries per install.

Revision ID: 0900
Revises: 0800
Create Date: 2026-12-05 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0900"
down_revision = "0800"
branch_labels = None
depends_on = None

CLAIMABLE = "status IN ('pending', 'failing', 'delivering')"


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "webhook_deferrals",
        sa.Column("id", big_id, nullable=False),
        sa.Column("install_id", sa.Integer(), nullable=False),
        sa.Column("plugin_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("first_event_id", sa.BigInteger(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("first_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replayed_through", sa.BigInteger(), nullable=True),
        sa.Column("replayed", sa.Integer(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["install_id"], ["plugin_installs.id"],
                                name=op.f("fk_webhook_deferrals_install_id_plugin_installs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deferrals")),
        sa.UniqueConstraint("install_id", "bucket", name=op.f("uq_webhook_deferrals_install_id")),
    )
    with op.batch_alter_table("webhook_deferrals", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deferrals_org_status", ["org_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_deferrals_plugin_id"), ["plugin_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_deferrals_updated_at"), ["updated_at"], unique=False)
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_org_claimable", ["org_id", "install_id", "next_attempt_at"],
                              unique=False, postgresql_where=sa.text(CLAIMABLE), sqlite_where=sa.text(CLAIMABLE))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_org_claimable")
    with op.batch_alter_table("webhook_deferrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deferrals_updated_at"))
        batch_op.drop_index(batch_op.f("ix_webhook_deferrals_plugin_id"))
        batch_op.drop_index("ix_webhook_deferrals_org_status")
    op.drop_table("webhook_deferrals")
