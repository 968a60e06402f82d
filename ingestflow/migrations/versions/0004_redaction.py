"""redaction: per-owner defaults, per-document setting and count, the job's plan

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = {
    'users': [('redact_by_default', sa.Boolean()), ('keep_original', sa.Boolean())],
    'documents': [('redact', sa.Boolean()), ('keep_original', sa.Boolean())],
    'jobs': [('redact', sa.Boolean())],
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, type_ in columns:
                batch.add_column(sa.Column(name, type_, nullable=False, server_default=sa.false()))
    with op.batch_alter_table('documents') as batch:
        batch.add_column(sa.Column('redacted_spans', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('documents') as batch:
        batch.drop_column('redacted_spans')
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name, _ in columns:
                batch.drop_column(name)
