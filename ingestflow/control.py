"""Changing a job's course: cancel, retry (resume), and automatic re-dispatch after crashes."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.states import Cancelling
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingestflow.db import Job, JobStatus, utcnow


class Conflict(Exception):
    pass


def requeue(job: Job, resume: bool = True) -> None:
    """Back to the dispatcher's queue; a resumed run skips the stages this job already completed."""
    job.status = JobStatus.queued
    job.resume = resume
    job.dispatched_at = job.flow_run_id = job.batch_flow_run_id = None
    job.finished_at = None
    job.error = None
    job.error_retryable = None
    job.stage = None


def retry(job: Job) -> None:
    if job.status not in (JobStatus.failed, JobStatus.cancelled):
        raise Conflict(f"job is {job.status}: only failed or cancelled jobs can be retried")
    requeue(job)


def mark_cancelled(job: Job) -> str | None:
    """First half of a cancel, in the database; returns the flow run to stop, if one started."""
    if JobStatus(job.status).terminal:
        raise Conflict(f"job is already {job.status}")
    job.status = JobStatus.cancelled
    job.finished_at = utcnow()
    job.error = "cancelled by the user"
    job.error_retryable = False
    return job.flow_run_id


async def stop_flow_run(client: PrefectClient, run_id: str | None) -> None:
    """Second half: Prefect's worker kills the flow process; stages running on Dask notice the cancelled
    job at their next progress step and stop before writing anything."""
    if run_id:
        run = await client.read_flow_run(UUID(run_id))
        if run.state and not run.state.is_final():
            await client.set_flow_run_state(UUID(run_id), Cancelling(message="cancelled by the user"), force=True)


def redispatch_failed(db: Session, max_attempts: int, backoff_s: float) -> list[str]:
    """Jobs that crashed or failed on a transient error go out again, up to max_attempts runs in all."""
    now = utcnow()
    requeued = []
    for job in db.scalars(
        select(Job).where(Job.status == JobStatus.failed, Job.error_retryable.is_(True), Job.attempts < max_attempts)
    ):
        finished = job.finished_at
        if finished is not None and finished.tzinfo is None:
            finished = finished.replace(tzinfo=now.tzinfo)
        if finished is None or now - finished >= timedelta(seconds=backoff_s * job.attempts):
            requeue(job)
            requeued.append(job.id)
    return requeued
