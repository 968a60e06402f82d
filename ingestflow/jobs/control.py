"""Changing a job's course: cancel, retry (resume), and automatic re-dispatch after crashes."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.states import Cancelling
from sqlalchemy.orm import object_session

from ingestflow.db import Document, Job, JobStatus, utcnow
from ingestflow.notify import events


class Conflict(Exception):
    pass


def requeue(job: Job, resume: bool = True, after_s: float = 0.0) -> None:
    """Back to the dispatcher's queue; a resumed run skips the stages this job already completed."""
    job.status = JobStatus.queued
    job.resume = resume
    job.dispatched_at = job.flow_run_id = job.batch_flow_run_id = job.dispatch_key = None
    job.dispatch_after = utcnow() + timedelta(seconds=after_s) if after_s else None
    job.finished_at = None
    job.error = None
    job.error_retryable = None
    job.stage = job.stage_run = None


def requeue_after_trouble(job: Job, note: str, after_s: float, count_as_infra: bool = True) -> None:
    """Not the document's fault (the orchestrator failed, a process died, a store was away): back to the
    queue after `after_s`, with the reason kept apart from `error`, which only ever speaks of the document."""
    requeue(job, resume=True, after_s=after_s)
    job.infra_note = note
    if count_as_infra:
        job.infra_retries = (job.infra_retries or 0) + 1


def give_up_after_trouble(job: Job, note: str) -> None:
    """Too many infrastructure failures in a row: the job stops, retryable, with no blame on the document;
    the scheduled backfill (or the user's retry) queues it again."""
    job.status = JobStatus.failed
    job.error = None
    job.error_retryable = True
    job.infra_note = note
    job.finished_at = utcnow()
    db = object_session(job)
    if db is not None:
        events.job_ended(db, job, db.get(Document, job.document_id))


def retry(job: Job) -> None:
    if job.status not in (JobStatus.failed, JobStatus.cancelled):
        raise Conflict(f"job is {job.status}: only failed or cancelled jobs can be retried")
    requeue(job)
    job.infra_retries = 0


# What a cancelled job's document must not keep: a cancelled document is stored but not in the knowledge base.
STORE_STAGES = ("embed", "graph")


def mark_cancelled(job: Job) -> str | None:
    """First half of a cancel, in the database; returns the flow run to stop, if one started. Cancelling a
    cancelled job again is allowed: it repeats the clean-up that a busy store may have refused the first time."""
    if job.status == JobStatus.cancelled:
        return job.flow_run_id
    if JobStatus(job.status).terminal:
        raise Conflict(f"job is already {job.status}")
    job.status = JobStatus.cancelled
    job.finished_at = utcnow()
    job.error = "cancelled by the user"
    job.error_retryable = False
    return job.flow_run_id


def forget_index(job: Job, doc: Document) -> None:
    """After the stores were purged of a cancelled job's document: nothing reads as indexed, and a retry
    writes the stores again (what parse, chunk and entities produced is kept and reused)."""
    job.completed_stages = [s for s in job.completed_stages or [] if s not in STORE_STAGES]
    doc.vector_indexed = doc.graph_indexed = False


async def stop_flow_run(client: PrefectClient, run_id: str | None) -> None:
    """Second half: Prefect's worker kills the flow process; stages running on Dask notice the cancelled
    job at their next progress step and stop before writing anything."""
    if run_id:
        run = await client.read_flow_run(UUID(run_id))
        if run.state and not run.state.is_final():
            await client.set_flow_run_state(UUID(run_id), Cancelling(message="cancelled by the user"), force=True)
