"""Developer portal: one-time link tokens (sign-up email verification, teammate invitations).

Only a token's SHA-256 is stored. A ``verify`` row not yet used means its user's email is not
verified; an ``invite`` row names the organisation, the email and the role the link grants.

Revision ID: 1000
Revises: 0900
Create Date: 2026-12-05 13:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import memory.db

revision = "1000"
down_revision = "0900"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", memory.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", memory.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", memory.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=op.f("fk_portal_tokens_org_id_organizations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_portal_tokens_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_tokens_token_hash")),
    )
    with op.batch_alter_table("portal_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_portal_tokens_org_kind", ["org_id", "kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_portal_tokens_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("portal_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_tokens_user_id"))
        batch_op.drop_index("ix_portal_tokens_org_kind")
    op.drop_table("portal_tokens")
