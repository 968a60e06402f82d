"""Carry a data directory made before PostgreSQL over: its SQLite metadata rows move into the embedded server.

`ingestflow up` does it at start-up when it finds `ingestflow.db` (and `ingestflow db import-sqlite` does it by
hand). Files, vectors and graph facts already live outside the database and stay where they are. The copy is one
transaction and skips rows already present, so an interrupted or repeated import loses and doubles nothing.
Prefect's own run history stays in the old Prefect SQLite file: jobs keep their ids and outcomes, and the
ones that were still running are re-queued, since their flow runs are gone.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, func, select, update
from sqlalchemy.dialects.postgresql import insert

from ingestflow.db import ACTIVE_STATUSES, Base, Job, JobStatus, get_engine
from ingestflow.migrate import upgrade


def import_sqlite(sqlite_path: Path, target_url: str) -> dict[str, int]:
    """Copy every table's rows; returns rows copied per table. The source file is renamed when done."""
    source_url = f"sqlite:///{sqlite_path}"
    upgrade(source_url)  # the source at the same schema revision as the target
    source = create_engine(source_url)
    copied: dict[str, int] = {}
    with source.connect() as src, get_engine(target_url).begin() as dst:
        for table in Base.metadata.sorted_tables:  # parents before children (foreign keys)
            rows = [dict(row._mapping) for row in src.execute(select(table))]
            if rows:
                before = dst.scalar(select(func.count()).select_from(table)) or 0
                dst.execute(insert(table).on_conflict_do_nothing(), rows)
                copied[table.name] = (dst.scalar(select(func.count()).select_from(table)) or 0) - before
        # Their flow runs lived in the old Prefect database: run them again, resuming where they were.
        dst.execute(
            update(Job)
            .where(Job.status.in_(ACTIVE_STATUSES))
            .values(status=JobStatus.queued, resume=True, dispatched_at=None, flow_run_id=None,
                    batch_flow_run_id=None)
        )
    source.dispose()
    sqlite_path.rename(sqlite_path.with_name(sqlite_path.name + ".imported"))
    return copied
