"""What the backfill repairs: documents whose last job failed or is stuck, that miss an index, or that were
indexed by another model version than the one configured now. Each gets a new job on the normal queue.

"Missing an index" is also checked against the stores search reads: a document marked vector-indexed whose
vectors are not in its owner's collection, or whose chunk texts are not in the lexical index (a store restored
from an older backup, a migration stopped half-way), is indexed again."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingestflow.control import requeue
from ingestflow.db import ChunkText, Document, Job, JobStatus, utcnow
from ingestflow.errors import TransientError
from ingestflow.models import embedding_model_name
from ingestflow.settings import Settings
from ingestflow.vectors import open_vector_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repair:
    document_id: str
    owner_id: str
    job_id: str | None
    reason: str
    action: str  # "resume" (the same job goes again) or "reindex" (a new job from the start)


def _aware(dt: Any) -> Any:
    return dt.replace(tzinfo=utcnow().tzinfo) if dt is not None and dt.tzinfo is None else dt


def unsearchable(db: Session, settings: Settings) -> dict[str, str]:
    """Vector-indexed documents whose vectors or chunk texts are missing, with what is missing. One count per
    owner when the owner's collection is whole; per document only where it is not."""
    texts = dict(db.execute(select(ChunkText.document_id, func.count()).group_by(ChunkText.document_id)).tuples().all())
    by_owner: dict[str, list[Document]] = {}
    for doc in db.scalars(select(Document).where(Document.vector_indexed.is_(True))):
        by_owner.setdefault(doc.owner_id, []).append(doc)
    store = open_vector_store(settings)
    missing: dict[str, str] = {}
    for owner_id, docs in by_owner.items():
        try:
            whole = store.count(owner_id) == sum(d.chunk_count for d in docs)
            for doc in docs:
                if not whole and store.count(owner_id, doc.id) != doc.chunk_count:
                    missing[doc.id] = "vectors not in the owner's collection"
        except TransientError as exc:
            log.warning("backfill could not check vectors: %s", exc)  # the other checks still hold
        for doc in docs:
            if doc.id not in missing and texts.get(doc.id, 0) != doc.chunk_count:
                missing[doc.id] = "chunk texts not in the lexical index"
    return missing


def plan(db: Session, settings: Settings) -> list[Repair]:
    repairs: list[Repair] = []
    unsearchable_docs = unsearchable(db, settings)
    stuck_before = utcnow() - timedelta(seconds=settings.stuck_after_s)
    current_embedding = embedding_model_name(settings.embedding_model)
    for doc in db.scalars(select(Document).order_by(Document.created_at)):
        job = db.scalar(select(Job).where(Job.document_id == doc.id).order_by(Job.created_at.desc()).limit(1))
        status = JobStatus(job.status) if job else None
        if job and status in (JobStatus.queued, JobStatus.running):
            touched = _aware(job.started_at or job.dispatched_at or job.created_at)
            if touched < stuck_before:
                repairs.append(Repair(doc.id, doc.owner_id, job.id, f"{status} since {touched:%Y-%m-%d %H:%M}",
                                      "resume"))
            continue
        if job and status == JobStatus.failed:
            # A permanent failure (corrupt or unsupported file) would only fail again.
            if job.error_retryable is not False:
                repairs.append(Repair(doc.id, doc.owner_id, job.id, f"failed: {job.error or job.infra_note}", "resume"))
        elif status == JobStatus.cancelled:
            continue  # the user stopped it on purpose
        elif not (doc.vector_indexed and doc.graph_indexed and doc.entities_extracted):
            missing = [n for n, ok in (("vectors", doc.vector_indexed), ("graph", doc.graph_indexed),
                                       ("entities", doc.entities_extracted)) if not ok]
            repairs.append(Repair(doc.id, doc.owner_id, job.id if job else None, f"missing {', '.join(missing)}",
                                  "reindex"))
        elif doc.id in unsearchable_docs:
            repairs.append(Repair(doc.id, doc.owner_id, job.id if job else None, unsearchable_docs[doc.id],
                                  "reindex"))
        elif (doc.models or {}).get("embedding") not in (None, current_embedding):
            repairs.append(Repair(doc.id, doc.owner_id, job.id if job else None,
                                  f"embedded by {doc.models['embedding']}, now {current_embedding}", "reindex"))
    return repairs


def apply(db: Session, repairs: list[Repair]) -> list[dict[str, Any]]:
    done = []
    for rep in repairs:
        job = db.get(Job, rep.job_id) if rep.job_id else None
        if rep.action == "resume" and job is not None:
            requeue(job)
            job.infra_retries = 0  # a fresh allowance of re-dispatches for the repaired job
            job_id = job.id
        else:
            doc = db.get(Document, rep.document_id)
            if doc is None:
                continue
            new = Job.for_document(doc)
            db.add(new)
            db.flush()
            job_id = new.id
        done.append({**asdict(rep), "queued_job_id": job_id})
    return done
