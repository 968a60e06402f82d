"""rate_buckets.granted counts: an upload group spends its owner's tokens in one statement and learns how many
it was granted

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Uploads that arrive together are written together (api/group_commit.py); the budget of each owner in a group is
spent by one upsert for all of its uploads, so the bucket says how many of them it granted, not only whether.
"""
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("ALTER TABLE rate_buckets ALTER COLUMN granted TYPE integer USING granted::integer")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("ALTER TABLE rate_buckets ALTER COLUMN granted TYPE boolean USING granted > 0")
