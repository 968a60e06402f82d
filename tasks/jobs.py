"""Bookkeeping tasks that run in the flow's own process: they touch only metadata rows."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from ingestflow.db import Document, Job, JobStatus, session_scope, utcnow
from ingestflow.errors import IngestError, PermanentError, is_transient
from ingestflow.refs import DocumentRef, work_dir
from ingestflow.settings import get_settings
from ingestflow.storage import blob_path

_bookkeeping = task(retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE, persist_result=False)


@_bookkeeping
def start_job(job_id: str) -> DocumentRef:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None:
            raise PermanentError(f"job {job_id} does not exist (document deleted?)")
        doc = db.get(Document, job.document_id)
        assert doc is not None
        job.status = JobStatus.running
        job.flow_run_id = str(flow_run.get_id())
        job.started_at = job.started_at or utcnow()
        job.attempts += 1
        job.error = None
        return DocumentRef(
            id=doc.id,
            owner_id=doc.owner_id,
            kind=doc.kind,
            format=doc.format,
            title=doc.title,
            collection=doc.collection,
            source=blob_path(settings.files_dir, doc.sha256),
            work_dir=work_dir(settings, doc.id),
        )


@_bookkeeping
def record_stage(job_id: str, stage: str, result: dict[str, Any]) -> None:
    """Set the document's flags from a finished stage; the flags say what the document now has."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None:
            return
        job.stage = stage
        doc = db.get(Document, job.document_id)
        assert doc is not None
        models = dict(doc.models or {})
        if stage == "parse":
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
def reset_indexes(job_id: str) -> None:
    """A fresh run re-derives everything; flags go down first so nothing half-rebuilt reads as indexed."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        doc = db.get(Document, job.document_id) if job else None
        if doc is not None:
            doc.vector_indexed = doc.graph_indexed = doc.entities_extracted = False
            doc.last_error = None


@_bookkeeping
def finish_job(job_id: str, error: str | None = None, retryable: bool | None = None) -> None:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        if job is None:
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
