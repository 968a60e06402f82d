"""API keys that can be listed, expired and revoked; audit records of revoked keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('api_keys', sa.Column('id', sa.String(32), nullable=True))
    # Existing keys get an id of their own (md5 of the hash: 32 hex characters, unique as the hash is).
    op.execute("UPDATE api_keys SET id = md5(key_hash)" if op.get_bind().dialect.name == "postgresql"
               else "UPDATE api_keys SET id = substr(key_hash, 1, 32)")
    with op.batch_alter_table('api_keys') as batch:
        batch.alter_column('id', existing_type=sa.String(32), nullable=False)
        batch.create_unique_constraint('uq_api_keys_id', ['id'])
        batch.add_column(sa.Column('label', sa.String(200), nullable=True))
        batch.add_column(sa.Column('prefix', sa.String(12), nullable=False, server_default=''))
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('audit_records') as batch:
        batch.alter_column('document_id', existing_type=sa.String(32), nullable=True)
        batch.alter_column('filename', existing_type=sa.String(500), nullable=True)
        batch.add_column(sa.Column('key_id', sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_records') as batch:
        batch.drop_column('key_id')
    with op.batch_alter_table('api_keys') as batch:
        for column in ('revoked_at', 'expires_at', 'prefix', 'label'):
            batch.drop_column(column)
        batch.drop_constraint('uq_api_keys_id', type_='unique')
        batch.drop_column('id')
