"""retention: a scheduled pass (prefect.yaml, hourly) that applies the owners' retention policies
(ingestflow/jobs/retention.py): expired documents deleted with the full cascade, or kept only redacted, each
removal audited. Runnable by hand from the Prefect UI; `dry_run` lists what it would do."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from ingestflow.db import session_scope
from ingestflow.jobs import retention as policies
from ingestflow.settings import get_settings


@task(name="expire-documents", cache_policy=NO_CACHE, persist_result=False, retries=3, retry_delay_seconds=30)
def expire_documents(dry_run: bool) -> list[dict[str, Any]]:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        due = policies.plan(db, settings)
    done = due if dry_run else policies.apply(settings, due)
    return [{**e.__dict__, "created_at": e.created_at.isoformat()} for e in done]


@flow(name="retention", log_prints=True)
def retention(dry_run: bool = False) -> list[dict[str, Any]]:
    done = expire_documents(dry_run)
    if done:
        create_table_artifact(done, key="retention", description="would expire" if dry_run else "expired")
    print(f"{'would expire' if dry_run else 'expired'} {len(done)} document(s)")
    return done
