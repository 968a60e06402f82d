"""Request budgets kept in PostgreSQL, so every API process and replica spends from one bucket per key's owner

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Token buckets lived in each API process's memory, so N processes allowed N times a key's rate, and the API could
not run more than one process (issue 29: one process cannot answer 100 concurrent uploads in 250 ms). UNLOGGED:
a bucket is worth nothing after a crash (it starts full again, as a new process's did), and its writes cost no
WAL, so the commit after a spend waits for no flush. PostgreSQL only (SQLite serves no API).
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("CREATE UNLOGGED TABLE rate_buckets (budget text NOT NULL, caller text NOT NULL, "
               "tokens double precision NOT NULL, stamp timestamptz NOT NULL, granted boolean NOT NULL, "
               "PRIMARY KEY (budget, caller))")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TABLE IF EXISTS rate_buckets")
