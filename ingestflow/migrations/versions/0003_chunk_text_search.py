"""chunk text for lexical search; full-text vectors on chunks and turns

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Generated from the text, so every write (the embed stage's, a migration's, an import's) keeps them in step.
# A chunk's heading path is searched with it: a section's title names what its paragraphs are about.
TSV = {"chunks": "to_tsvector('english', coalesce(meta->>'headings', '') || ' ' || text)",
       "turns": "to_tsvector('english', text)"}


def upgrade() -> None:
    op.create_table('chunks',
    sa.Column('id', sa.String(length=48), nullable=False),
    sa.Column('owner_id', sa.String(length=32), nullable=False),
    sa.Column('document_id', sa.String(length=32), nullable=False),
    sa.Column('chunk_index', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('collection', sa.String(length=200), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('chunks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chunks_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_chunks_owner_id'), ['owner_id'], unique=False)
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite (older data directories, imported into PostgreSQL) has no full-text search here
    # btree_gin lets one GIN index hold (owner, lexeme): a term's postings are read for one owner only.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    for table in ('chunks', 'turns'):
        op.execute(f"ALTER TABLE {table} ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({TSV[table]}) STORED")
        op.execute(f"ALTER TABLE {table} ADD COLUMN token_count integer "
                   f"GENERATED ALWAYS AS (length({TSV[table]})) STORED")
        op.execute(f"CREATE INDEX ix_{table}_owner_tsv ON {table} USING gin (owner_id, tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_turns_owner_tsv")
        op.execute("ALTER TABLE turns DROP COLUMN IF EXISTS tsv, DROP COLUMN IF EXISTS token_count")
    with op.batch_alter_table('chunks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chunks_owner_id'))
        batch_op.drop_index(batch_op.f('ix_chunks_document_id'))
    op.drop_table('chunks')
