"""certification: the examiner's docs watch (docs pages' state, question proposals, the bank overlay)

Revision ID: 1800
Revises: 1700
Create Date: 2026-12-06 18:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import memory.db


revision = '1800'
down_revision = "1700"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cert_doc_pages',
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('sections', sa.JSON(), nullable=False),
    sa.Column('updated_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('path', name=op.f('pk_cert_doc_pages'))
    )
    op.create_table('cert_question_proposals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('anchor', sa.String(length=200), nullable=False),
    sa.Column('question_id', sa.String(length=32), nullable=True),
    sa.Column('question', sa.JSON(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', memory.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cert_question_proposals')),
    sa.UniqueConstraint('path', 'digest', name='uq_cert_question_proposals_version')
    )
    op.create_table('cert_bank_questions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('added_by', sa.String(length=200), nullable=False),
    sa.Column('added_at', memory.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['cert_question_proposals.id'],
                            name=op.f('fk_cert_bank_questions_proposal_id_cert_question_proposals'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cert_bank_questions'))
    )


def downgrade() -> None:
    op.drop_table('cert_bank_questions')
    op.drop_table('cert_question_proposals')
    op.drop_table('cert_doc_pages')
