"""Job bookkeeping, run in the flow's own process: short metadata transactions, not Prefect tasks (as tasks
they were three of every four task runs a document cost the Prefect server, and a failure here is retried by
re-dispatching the job, which resumes at the first stage not completed).

A fresh run lowers the document's flags first, so nothing half-rebuilt reads as indexed; each finished
stage then raises its flag and is listed on the job, which is what a resumed run skips."""

from __future__ import annotations

from sqlalchemy import select

from ingestflow.control import requeue_after_trouble
from ingestflow.db import Document, Job, JobStatus, session_scope, utcnow
from ingestflow.errors import IngestError, is_transient
from ingestflow.pipeline import Stage, StageResult, metrics_of
from ingestflow.refs import DocumentRef, work_dir
from ingestflow.settings import get_settings
from ingestflow.storage import blob_path


def _held(job: Job | None, dispatch_key: str | None) -> bool:
    """Whether this run still holds the job: a run the crash automation gave up on, whose job went out again
    under a new key, must not write over the new run's bookkeeping."""
    return job is not None and (dispatch_key is None or job.dispatch_key == dispatch_key)


def start_job(job_id: str, dispatch_key: str | None, flow_run_id: str) -> tuple[DocumentRef, list[str]] | None:
    """Claim the job for this flow run; returns the document and the stages a resumed run may skip, or None
    when the job was cancelled, deleted, finished, or handed to another run (its dispatch key moved on)."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if job is None or job.status in (JobStatus.cancelled, JobStatus.completed):
            return None
        if not _held(job, dispatch_key):
            return None  # a stale or duplicated run: the job belongs to a newer dispatch
        doc = db.get(Document, job.document_id)
        assert doc is not None
        if not job.resume:
            job.completed_stages = []
            job.notes = []
            job.stage_metrics = {}
            doc.vector_indexed = doc.graph_indexed = doc.entities_extracted = False
            doc.last_error = None
        skip = list(job.completed_stages or [])
        job.status = JobStatus.running
        job.flow_run_id = flow_run_id
        job.started_at = job.started_at or utcnow()
        job.attempts += 1
        job.error = None
        ref = DocumentRef(
            id=doc.id,
            job_id=job.id,
            owner_id=doc.owner_id,
            kind=doc.kind,
            format=doc.format,
            title=doc.title,
            collection=doc.collection,
            source=blob_path(settings.files_dir, doc.sha256),
            work_dir=work_dir(settings, doc.id),
            language=doc.language,
        )
        return ref, skip


def record_stage(job_id: str, dispatch_key: str | None, stage: Stage, result: StageResult,
                 submitted_at: float) -> None:
    """Apply a finished stage to the document (flags, model) and its accounting to the job."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None or not _held(job, dispatch_key):
            return
        job.stage = stage.name
        job.completed_stages = [*(job.completed_stages or []), stage.name]
        job.stage_metrics = {**(job.stage_metrics or {}), stage.name: metrics_of(result, submitted_at)}
        if result.note:
            job.notes = [*(job.notes or []), f"{stage.name}: {result.note}"]
        doc = db.get(Document, job.document_id)
        assert doc is not None
        result.apply(doc)
        if stage.model_slot and result.model:
            doc.models = {**(doc.models or {}), stage.model_slot: result.model}


def finish_job(job_id: str, dispatch_key: str | None) -> None:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None or not _held(job, dispatch_key) or job.status == JobStatus.cancelled:
            return  # a cancel is the user's last word
        job.status = JobStatus.completed
        job.stage = None
        job.error = job.error_retryable = None
        job.finished_at = utcnow()
        doc = db.get(Document, job.document_id)
        if doc is not None:
            doc.last_error = None
            doc.indexed_at = utcnow()


def fail_job(job_id: str, dispatch_key: str | None, stage: str, exc: BaseException) -> None:
    """A stage gave up. Input the document cannot get past fails the job with that reason; anything
    transient goes back to the queue (bounded, with backoff), resuming at this stage."""
    settings = get_settings()
    reason = exc.message if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
    message = f"{stage} failed: {reason}"
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None or not _held(job, dispatch_key) or job.status == JobStatus.cancelled:
            return
        if is_transient(exc) and job.attempts < settings.max_attempts:
            requeue_after_trouble(job, message, settings.retry_backoff_s * job.attempts, count_as_infra=False)
            return
        job.status = JobStatus.failed
        job.error = message
        job.error_retryable = is_transient(exc)
        job.finished_at = utcnow()
        doc = db.get(Document, job.document_id)
        if doc is not None:
            doc.last_error = message
