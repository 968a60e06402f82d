"""translation: a recording's English translation asked for on upload, and the job's plan that includes it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLES = ('documents', 'jobs')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('translate', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('translate')
