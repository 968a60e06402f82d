"""Job bookkeeping, run in the flow's own process: short metadata transactions, not Prefect tasks (as tasks
they were three of every four task runs a document cost the Prefect server, and a failure here is retried by
re-dispatching the job, which resumes at the first stage not completed).

A fresh run lowers the document's flags first, so nothing half-rebuilt reads as indexed; each finished
stage then raises its flag and is listed on the job, which is what a resumed run skips. Every write checks
that the run still holds the job (its dispatch key), so a run given up on cannot overwrite a newer one's."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from sqlalchemy import select

from ingestflow.db import Document, Job, JobStatus, session_scope, utcnow
from ingestflow.errors import ForeignError, IngestError, is_transient
from ingestflow.jobs.control import requeue_after_trouble
from ingestflow.notify import events
from ingestflow.pipeline import Stage, StageResult, metrics_of
from ingestflow.refs import DocumentRef, work_dir
from ingestflow.settings import get_settings
from ingestflow.stores.storage import blob_path


def _held(job: Job | None, dispatch_key: str | None) -> bool:
    return job is not None and (dispatch_key is None or job.dispatch_key == dispatch_key)


def start_job(job_id: str, dispatch_key: str | None, flow_run_id: str) -> tuple[DocumentRef, list[str]] | None:
    """Claim the job for this flow run; returns the document and the stages a resumed run may skip, or None
    when the job was cancelled, deleted, finished, or handed to another run (its dispatch key moved on)."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if job is None or job.status in (JobStatus.cancelled, JobStatus.completed) or not _held(job, dispatch_key):
            return None
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
            size_bytes=doc.size_bytes or 0,
            redact=doc.redact,
            keep_original=doc.keep_original,
            translate=doc.translate,
        )
        return ref, skip


def mark_running(job_ids: Sequence[str], dispatch_key: str | None, stage: Stage, task_run: str) -> None:
    """The stage these jobs are in now, and the task run doing it (what the job view reads progress from)."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        for job in db.scalars(select(Job).where(Job.id.in_(job_ids))):
            if _held(job, dispatch_key) and job.status == JobStatus.running:
                job.stage, job.stage_run = stage.name, task_run


def record_stage(done: Sequence[tuple[str, StageResult]], dispatch_key: str | None, stage: Stage,
                 submitted_at: float, flow_run_id: str, task_run: str) -> set[str]:
    """Apply a finished stage to each document (flags, model) and its accounting to each job; returns the
    jobs that go on (not cancelled, deleted or handed to another run meanwhile)."""
    settings = get_settings()
    results = dict(done)
    live: set[str] = set()
    with session_scope(settings.sqlalchemy_url) as db:
        jobs = [job for job in db.scalars(select(Job).where(Job.id.in_(list(results))))
                if _held(job, dispatch_key) and job.status == JobStatus.running]  # not cancelled meanwhile, still ours
        # Their documents in one select: one each was 10% of the flow host's CPU samples in a 200-note burst.
        docs = {doc.id: doc for doc in db.scalars(select(Document).where(
            Document.id.in_([job.document_id for job in jobs])))}
        for job in jobs:
            live.add(job.id)
            result = results[job.id]
            job.completed_stages = [*(job.completed_stages or []), stage.name]
            job.stage_metrics = {**(job.stage_metrics or {}),
                                 stage.name: metrics_of(result, submitted_at, flow_run_id, task_run)}
            if result.note:
                job.notes = [*(job.notes or []), f"{stage.name}: {result.note}"]
            doc = docs[job.document_id]
            result.apply(doc)
            doc.stage_versions = {**(doc.stage_versions or {}), stage.name: stage.version}
            if stage.model_slot and result.model:
                doc.models = {**(doc.models or {}), stage.model_slot: result.model}
    return live


def forget_deleted(refs: Sequence[DocumentRef]) -> None:
    """A stage that was running when its document was deleted wrote its files after the DELETE removed the
    work directory: remove them again (the stores are the stages' own concern, see tasks/embed and graph)."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        kept = set(db.scalars(select(Document.id).where(Document.id.in_([r.id for r in refs]))))
    for ref in refs:
        if ref.id not in kept:
            shutil.rmtree(ref.work_dir, ignore_errors=True)


def finish_job(job_id: str, dispatch_key: str | None) -> None:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None or not _held(job, dispatch_key) or job.status == JobStatus.cancelled:
            return  # a cancel is the user's last word
        job.status = JobStatus.completed
        job.stage = job.stage_run = None
        job.error = job.error_retryable = None
        job.finished_at = utcnow()
        doc = db.get(Document, job.document_id)
        if doc is not None:
            doc.last_error = None
            doc.indexed_at = utcnow()
        events.job_ended(db, job, doc)


def in_words(exc: BaseException) -> str:
    """What a job's error says: our own errors speak of the document already; a library's exception text
    ("[E088] Text of length 5000037 exceeds maximum of 1000000...") is for the operator, in the task run's log."""
    if isinstance(exc, IngestError) and not isinstance(exc, ForeignError):
        return exc.message
    name = exc.type_name.rsplit(".", 1)[-1] if isinstance(exc, ForeignError) else type(exc).__name__
    return (f"an unexpected error ({name}) stopped this stage on this document, which search and chat leave out "
            "until a retry completes; the task run in the Prefect UI has the details")


def fail_job(job_id: str, dispatch_key: str | None, stage: str, exc: BaseException) -> str:
    """A stage gave up. Input the document cannot get past fails the job with that reason; anything
    transient goes back to the queue (bounded, with backoff), resuming at this stage. Returns the outcome."""
    settings = get_settings()
    message = f"{stage} failed: {in_words(exc)}"
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None or not _held(job, dispatch_key) or job.status == JobStatus.cancelled:
            return "skipped"
        if is_transient(exc) and job.attempts < settings.max_attempts:
            requeue_after_trouble(job, message, settings.retry_backoff_s * job.attempts, count_as_infra=False)
            return "requeued"
        job.status = JobStatus.failed
        job.error = message
        job.error_retryable = is_transient(exc)
        job.finished_at = utcnow()  # stage and stage_run stay: the view shows the failed task run's attempts
        doc = db.get(Document, job.document_id)
        if doc is not None:
            doc.last_error = message
        events.job_ended(db, job, doc)
        return "failed"
