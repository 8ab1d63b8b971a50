"""Community activation: early-access applications, community emails, unsubscribes, announcements and
their per-recipient deliveries.

Revision ID: 1700
Revises: 1600
Create Date: 2026-12-06 00:42:20.188180
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import memory.db


revision = '1700'
down_revision = "1600"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('announcements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('link_path', sa.String(length=500), nullable=False),
    sa.Column('segments', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_at', memory.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('demo', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcements')),
    sa.UniqueConstraint('slug', name=op.f('uq_announcements_slug'))
    )
    op.create_table('community_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('to_email', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=True),
    sa.Column('announcement_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('created_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_community_messages')),
    sa.UniqueConstraint('uid', name=op.f('uq_community_messages_uid'))
    )
    with op.batch_alter_table('community_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_community_messages_announcement_id'), ['announcement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_community_messages_application_id'), ['application_id'], unique=False)
        batch_op.create_index('ix_community_messages_to', ['to_email', 'created_at'], unique=False)

    op.create_table('community_unsubscribes',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('created_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email', name=op.f('pk_community_unsubscribes'))
    )
    op.create_table('announcement_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('announcement_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('segment', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('next_attempt_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', memory.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', memory.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['announcement_id'], ['announcements.id'], name=op.f('fk_announcement_deliveries_announcement_id_announcements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcement_deliveries')),
    sa.UniqueConstraint('announcement_id', 'channel', 'recipient', name='uq_announcement_deliveries_recipient')
    )
    with op.batch_alter_table('announcement_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_announcement_deliveries_due', ['state', 'next_attempt_at'], unique=False)

    op.create_table('early_access_applications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('company', sa.String(length=200), nullable=False),
    sa.Column('website', sa.String(length=500), nullable=False),
    sa.Column('use_case', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('created_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', memory.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_at', memory.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('decision_note', sa.Text(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=True),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('demo', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_early_access_applications_org_id_organizations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_early_access_applications')),
    sa.UniqueConstraint('email', name=op.f('uq_early_access_applications_email'))
    )
    with op.batch_alter_table('early_access_applications', schema=None) as batch_op:
        batch_op.create_index('ix_early_access_applications_status', ['status', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('early_access_applications', schema=None) as batch_op:
        batch_op.drop_index('ix_early_access_applications_status')

    op.drop_table('early_access_applications')
    with op.batch_alter_table('announcement_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_announcement_deliveries_due')

    op.drop_table('announcement_deliveries')
    op.drop_table('community_unsubscribes')
    with op.batch_alter_table('community_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_community_messages_to')
        batch_op.drop_index(batch_op.f('ix_community_messages_application_id'))
        batch_op.drop_index(batch_op.f('ix_community_messages_announcement_id'))

    op.drop_table('community_messages')
    op.drop_table('announcements')
