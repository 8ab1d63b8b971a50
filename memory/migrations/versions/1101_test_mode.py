"""Test mode (Stripe-like) and signed customer webhooks.

``mode`` (``live`` | ``test``, default ``live``) on pipelines, jobs, plugin installs, events and credit
ledger rows: objects made with a ``lvq_test_`` key are test objects, seen only by test-mode keys. Names,
idempotency keys and installs are unique per mode. ``test_credit_accounts`` keeps the test balance apart
from the live one (refilled monthly); ``webhook_endpoints`` are the customers' registered URLs with their
signing secrets.

Revision ID: 1101
Revises: 1000
Create Date: 2026-12-05 21:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import memory.db

revision = "1101"
down_revision = "1100"
branch_labels = None
depends_on = None


def _mode() -> sa.Column[str]:
    return sa.Column("mode", sa.String(length=8), server_default="live", nullable=False)


def _jobs_sequence() -> int | None:
    """SQLite: the jobs table's AUTOINCREMENT high-water mark (the rebuild would lose purged ids above the max)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    return bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'")).scalar()


def _restore_jobs_sequence(seq: int | None) -> None:
    if seq is not None:
        op.get_bind().execute(sa.text("UPDATE sqlite_sequence SET seq = max(seq, :s) WHERE name = 'jobs'"),
                              {"s": seq})


def upgrade() -> None:
    seq = _jobs_sequence()
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        batch_op.add_column(_mode())
        batch_op.drop_constraint("uq_pipelines_org_id", type_="unique")
        batch_op.create_unique_constraint("uq_pipelines_org_id", ["org_id", "mode", "name"])
    # SQLite rebuilds the table: keep AUTOINCREMENT (a purged job's id is never reused).
    with op.batch_alter_table("jobs", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.add_column(_mode())
        batch_op.drop_constraint("uq_jobs_org_id", type_="unique")
        batch_op.create_unique_constraint("uq_jobs_org_id", ["org_id", "mode", "idempotency_key"])
    _restore_jobs_sequence(seq)
    with op.batch_alter_table("plugin_installs", schema=None) as batch_op:
        batch_op.add_column(_mode())
        batch_op.drop_constraint("uq_plugin_installs_plugin_id", type_="unique")
        batch_op.create_unique_constraint("uq_plugin_installs_plugin_id", ["plugin_id", "org_id", "mode"])
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(_mode())
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.add_column(_mode())
    op.create_table(
        "test_credit_accounts",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("balance", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("updated_at", memory.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"],
                                name=op.f("fk_test_credit_accounts_org_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_test_credit_accounts")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", memory.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", memory.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"],
                                name=op.f("fk_webhook_endpoints_org_id_organizations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_endpoints_org_mode", ["org_id", "mode"], unique=False)


def downgrade() -> None:
    seq = _jobs_sequence()
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_endpoints_org_mode")
    op.drop_table("webhook_endpoints")
    op.drop_table("test_credit_accounts")
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.drop_column("mode")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("mode")
    with op.batch_alter_table("plugin_installs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_plugin_installs_plugin_id", type_="unique")
        batch_op.create_unique_constraint("uq_plugin_installs_plugin_id", ["plugin_id", "org_id"])
        batch_op.drop_column("mode")
    # SQLite rebuilds the table: keep AUTOINCREMENT (a purged job's id is never reused).
    with op.batch_alter_table("jobs", schema=None, table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_constraint("uq_jobs_org_id", type_="unique")
        batch_op.create_unique_constraint("uq_jobs_org_id", ["org_id", "idempotency_key"])
        batch_op.drop_column("mode")
    _restore_jobs_sequence(seq)
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        batch_op.drop_constraint("uq_pipelines_org_id", type_="unique")
        batch_op.create_unique_constraint("uq_pipelines_org_id", ["org_id", "name"])
        batch_op.drop_column("mode")
