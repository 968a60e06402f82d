"""job_queued_notify: a job queued (inserted, or put back in the queue) notifies the dispatcher at commit

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# ingestflow/jobs/wake.py LISTENs on this channel (its CHANNEL); PostgreSQL folds a transaction's identical notifications
# into one, delivered at commit.
CHANNEL = 'ingestflow_job_queued'


def _postgres() -> bool:  # a legacy SQLite file is upgraded only to be imported (sqlite_import.py)
    return op.get_bind().dialect.name == 'postgresql'


def upgrade() -> None:
    if not _postgres():
        return
    op.execute(f"""
        CREATE FUNCTION ingestflow_job_queued() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER jobs_queued_notify AFTER INSERT OR UPDATE OF status ON jobs
        FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION ingestflow_job_queued()
    """)


def downgrade() -> None:
    if not _postgres():
        return
    op.execute("DROP TRIGGER jobs_queued_notify ON jobs")
    op.execute("DROP FUNCTION ingestflow_job_queued()")
