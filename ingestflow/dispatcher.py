"""Hands queued jobs to Prefect at a pace its server can take, and mirrors finished runs back.

Uploads only insert rows; this loop creates flow runs. One job becomes one ingest-document run; several
waiting jobs become one ingest-batch run (a flow run costs seconds of process start here). If Prefect is
unreachable, jobs stay queued and go out on a later tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.deployments.flow_runs import arun_deployment
from sqlalchemy import or_, select

from deployments.names import BATCH_DEPLOYMENT, DOCUMENT_DEPLOYMENT
from ingestflow.control import redispatch_failed
from ingestflow.db import Job, JobStatus, session_scope, utcnow
from ingestflow.settings import Settings

log = logging.getLogger("ingestflow.dispatcher")

# A dispatched run Prefect has not started by then is looked at again by the reconciler.
TERMINAL_PREFECT = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _queued(settings: Settings) -> tuple[list[str], str | None]:
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        jobs = list(
            db.scalars(
                select(Job)
                .where(Job.status == JobStatus.queued, Job.dispatched_at.is_(None))
                .order_by(Job.created_at)
                .limit(settings.dispatch_batch_size)
            )
        )
        # One flow run per job attempt, even if this tick is repeated after a lost reply.
        key = f"{jobs[0].id}:{jobs[0].attempts}" if len(jobs) == 1 else None
        return [j.id for j in jobs], key


def _mark_dispatched(settings: Settings, ids: list[str], run_id: str) -> None:
    with session_scope(settings.sqlalchemy_url) as db:
        for job in db.scalars(select(Job).where(Job.id.in_(ids))):
            job.dispatched_at = utcnow()
            if len(ids) == 1:
                job.flow_run_id = run_id
            else:
                job.batch_flow_run_id = run_id


async def dispatch_once(settings: Settings) -> int:
    # Database work runs in threads: a lock wait must never stall the API's event loop.
    ids, key = await asyncio.to_thread(_queued, settings)
    if not ids:
        return 0
    if len(ids) == 1:
        run = await arun_deployment(DOCUMENT_DEPLOYMENT, parameters={"job_id": ids[0]}, timeout=0, idempotency_key=key)
    else:
        run = await arun_deployment(BATCH_DEPLOYMENT, parameters={"job_ids": ids}, timeout=0)
    await asyncio.to_thread(_mark_dispatched, settings, ids, str(run.id))
    log.info("dispatched %d job(s) to flow run %s", len(ids), run.id)
    return len(ids)


def _pending(settings: Settings) -> list[tuple[str, str | None]]:
    cutoff = utcnow() - timedelta(seconds=5)
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        return [
            (j.id, j.flow_run_id or j.batch_flow_run_id)
            for j in db.scalars(
                select(Job).where(
                    or_(Job.status == JobStatus.running, Job.status == JobStatus.queued),
                    Job.dispatched_at.is_not(None),
                    Job.dispatched_at < cutoff,
                )
            )
        ]


def _apply_verdicts(settings: Settings, verdicts: dict[str, tuple[str, str]]) -> None:
    with session_scope(settings.sqlalchemy_url) as db:
        for job_id, (state, message) in verdicts.items():
            job = db.get(Job, job_id)
            # Re-read: the flow may have recorded its own outcome since.
            if job is None or JobStatus(job.status).terminal:
                continue
            job.status = JobStatus.cancelled if state == "CANCELLED" else JobStatus.failed
            job.error = job.error or f"flow run ended {state.lower()} before the job finished: {message}".strip()
            job.error_retryable = state == "CRASHED"
            job.finished_at = utcnow()


async def reconcile_once(settings: Settings) -> None:
    """Jobs whose flow run ended without the flow saying so (crash, cancel, kill) get Prefect's verdict."""
    pending = await asyncio.to_thread(_pending, settings)
    if not pending:
        return
    verdicts: dict[str, tuple[str, str]] = {}
    async with get_client() as client:
        for job_id, run_id in pending:
            if not run_id:
                continue
            run = await client.read_flow_run(UUID(run_id))
            if run.state and run.state.type.value in TERMINAL_PREFECT:
                verdicts[job_id] = (run.state.type.value, run.state.message or "")
    if verdicts:
        await asyncio.to_thread(_apply_verdicts, settings, verdicts)


def redispatch_once(settings: Settings) -> None:
    with session_scope(settings.sqlalchemy_url) as db:
        ids = redispatch_failed(db, settings.max_attempts, settings.retry_backoff_s)
    if ids:
        log.info("re-dispatching %d crashed or transiently failed job(s)", len(ids))


async def run_forever(settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await reconcile_once(settings)
            await asyncio.to_thread(redispatch_once, settings)
            await dispatch_once(settings)
        except Exception as exc:  # Prefect down or busy: keep the jobs, try next tick
            log.warning("dispatch tick failed, will retry: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.dispatch_interval_s)
