"""retention policies and the audit of removals

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'retention_policies',
        sa.Column('id', sa.String(32), primary_key=True),
        sa.Column('owner_id', sa.String(32), sa.ForeignKey('users.id', ondelete='CASCADE'), nullable=False),
        sa.Column('collection', sa.String(200), nullable=True),
        sa.Column('days', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_retention_policies_owner_id', 'retention_policies', ['owner_id'])
    op.create_table(
        'audit_records',
        sa.Column('id', sa.String(32), primary_key=True),
        sa.Column('owner_id', sa.String(32), sa.ForeignKey('users.id', ondelete='CASCADE'), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('action', sa.String(20), nullable=False),
        sa.Column('document_id', sa.String(32), nullable=False),
        sa.Column('title', sa.String(500), nullable=False),
        sa.Column('filename', sa.String(500), nullable=False),
        sa.Column('actor', sa.String(200), nullable=False),
        sa.Column('policy_id', sa.String(32), nullable=True),
        sa.Column('removed', sa.JSON(), nullable=False),
    )
    for column in ('owner_id', 'at', 'document_id'):
        op.create_index(f'ix_audit_records_{column}', 'audit_records', [column])


def downgrade() -> None:
    op.drop_table('audit_records')
    op.drop_table('retention_policies')
