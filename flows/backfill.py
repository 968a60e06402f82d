"""backfill: a scheduled sweep (prefect.yaml, every 15 minutes) that re-queues what failed, is stuck, misses
an index or was indexed by an older model. The dispatcher then runs the queued jobs as usual."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from ingestflow.db import session_scope
from ingestflow.jobs import backfill as sweep
from ingestflow.settings import get_settings


@task(name="requeue-repairs", cache_policy=NO_CACHE, persist_result=False)
def requeue_repairs(dry_run: bool) -> list[dict[str, Any]]:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        repairs = sweep.plan(db, settings)
        if dry_run:
            return [{**r.__dict__, "queued_job_id": None} for r in repairs]
        return sweep.apply(db, repairs)


@flow(name="backfill", log_prints=True)
def backfill(dry_run: bool = False) -> list[dict[str, Any]]:
    done = requeue_repairs(dry_run)
    if done:
        create_table_artifact(done, key="backfill", description=f"{'would re-queue' if dry_run else 're-queued'}")
    print(f"{'would re-queue' if dry_run else 're-queued'} {len(done)} document(s)")
    return done
