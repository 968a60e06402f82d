"""Bookkeeping tasks that run in the flow's own process: they touch only metadata rows.

A fresh run lowers the document's flags first, so nothing half-rebuilt reads as indexed; each finished
stage then raises its flag and is listed on the job, which is what a resumed run skips."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from ingestflow.db import Document, Job, JobStatus, session_scope, utcnow
from ingestflow.errors import IngestError, is_transient
from ingestflow.refs import DocumentRef, work_dir
from ingestflow.settings import get_settings
from ingestflow.storage import blob_path

_bookkeeping = task(retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE, persist_result=False)


@_bookkeeping
def start_job(job_id: str) -> tuple[DocumentRef, list[str]] | None:
    """Claim the job for this flow run; returns the document and the stages a resumed run may skip,
    or None when the job was cancelled or deleted before the run got to it."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None or job.status == JobStatus.cancelled:
            return None
        doc = db.get(Document, job.document_id)
        assert doc is not None
        if not job.resume:
            job.completed_stages = []
            job.notes = []
            doc.vector_indexed = doc.graph_indexed = doc.entities_extracted = False
            doc.last_error = None
        skip = list(job.completed_stages or [])
        job.status = JobStatus.running
        job.flow_run_id = str(flow_run.get_id())
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


@_bookkeeping
def record_stage(job_id: str, stage: str, result: dict[str, Any]) -> None:
    """Set the document's flags from a finished stage; the flags say what the document now has."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None:
            return
        job.stage = stage
        job.completed_stages = [*(job.completed_stages or []), stage]
        doc = db.get(Document, job.document_id)
        assert doc is not None
        models = dict(doc.models or {})
        if result.get("note"):
            job.notes = [*(job.notes or []), f"{stage}: {result['note']}"]
        if stage == "transcribe":
            doc.language = result["language"]
            doc.language_probability = result["language_probability"]
            doc.duration_s = result["duration_s"]
            models["asr"] = result["asr_model"]
        elif stage == "improve":
            models["improve"] = result["improved_by"]
        elif stage == "parse":
            doc.page_count = result.get("page_count")
            models["parser"] = result["parser"]
        elif stage == "chunk":
            doc.chunk_count = result["chunk_count"]
        elif stage == "embed":
            doc.vector_indexed = True
            models["embedding"] = result["embedding_model"]
        elif stage == "extract-entities":
            doc.entities_extracted = True
            doc.entity_count = result["entity_count"]
            models["ner"] = result["ner_model"]
        elif stage == "graph":
            doc.graph_indexed = True
            models["graph"] = result["graph_backend"]
        doc.models = models


@_bookkeeping
def finish_job(job_id: str, error: str | None = None, retryable: bool | None = None) -> None:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None or job.status == JobStatus.cancelled:  # a cancel is the user's last word
            return
        job.status = JobStatus.failed if error else JobStatus.completed
        job.stage = None if not error else job.stage
        job.error = error
        job.error_retryable = retryable
        job.finished_at = utcnow()
        doc = db.get(Document, job.document_id)
        if doc is not None:
            doc.last_error = error
            if not error:
                doc.indexed_at = utcnow()


def describe_failure(stage: str, exc: BaseException) -> tuple[str, bool]:
    reason = exc.message if isinstance(exc, IngestError) else f"{type(exc).__name__}: {exc}"
    return f"{stage} failed: {reason}", is_transient(exc)
