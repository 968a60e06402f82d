"""dispatch keys, infrastructure notes, per-stage accounting

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('stage_run', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('infra_note', sa.Text(), nullable=True))
        batch.add_column(sa.Column('infra_retries', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('stage_metrics', sa.JSON(), nullable=False, server_default='{}'))
        batch.add_column(sa.Column('dispatch_key', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('dispatch_after', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_jobs_status_owner', 'jobs', ['status', 'owner_id'])


def downgrade() -> None:
    op.drop_index('ix_jobs_status_owner', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        for name in ('dispatch_after', 'dispatch_key', 'stage_metrics', 'infra_retries', 'infra_note', 'stage_run'):
            batch.drop_column(name)
