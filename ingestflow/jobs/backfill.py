"""What the backfill repairs: documents whose last job failed or is stuck, that miss an index, or that a stage
made at another version of its rules (ingestflow.pipeline.Stage.version) or with another embedding model than
the one configured now. Each gets a job on the normal queue; a stale stage's job re-runs that stage and the ones
after it only, reusing what the stages before it made.

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

from ingestflow import pipeline
from ingestflow.db import ChunkText, Document, Job, JobStatus, utcnow
from ingestflow.errors import TransientError
from ingestflow.jobs.control import requeue
from ingestflow.models import embedding_model_name
from ingestflow.settings import Settings
from ingestflow.stores.vectors import open_vector_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repair:
    document_id: str
    owner_id: str
    job_id: str | None
    reason: str
    # "resume" (the same job goes again), "reindex" (a new job from the start) or "rerun" (a new job from
    # `from_stage`, the stages before it reused)
    action: str
    from_stage: str | None = None
    estimate_s: float | None = None  # what the stages to run took on this document last time, where known


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
        job = Job.latest_of(db, doc.id)
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
        else:
            stale = stale_stage(doc, current_embedding)
            if stale:
                stage, reason = stale
                repairs.append(Repair(doc.id, doc.owner_id, job.id if job else None, reason, "rerun", stage,
                                      estimate(doc, job, stage)))
    return repairs


def stale_stage(doc: Document, current_embedding: str) -> tuple[str, str] | None:
    """The first stage of the document's plan whose output is out of date, and why."""
    ran = doc.stage_versions or {}
    stages = pipeline.plan_for(doc)
    for stage in stages:
        if stage.name == "embed" and (doc.models or {}).get("embedding") not in (None, current_embedding):
            return stage.name, f"embedded by {doc.models['embedding']}, now {current_embedding}"
        # A document from before stages recorded versions is left as it is: nothing says it is stale.
        if ran and ran.get(stage.name) != stage.version:
            was = ran.get(stage.name)
            reason = (f"{stage.name} ran at version {was}, now {stage.version}" if was else
                      f"{stage.name} never ran (version {stage.version} now)")
            if stage.only_redacted and not doc.keep_original:
                # Its input was replaced by its output and not kept: only the upload still says what was said.
                return stages[0].name, reason + "; no unredacted text was kept, so it is read again from the upload"
            return stage.name, reason
    return None


def estimate(doc: Document, job: Job | None, first: str) -> float | None:
    """Seconds the stages from `first` on took in the document's last job (its per-stage accounting)."""
    names = [s.name for s in pipeline.plan_for(doc)]
    metrics = (job.stage_metrics or {}) if job else {}
    todo = names[names.index(first):]
    if not all(n in metrics for n in todo):
        return None
    return round(sum(float(metrics[n].get("wall_s", 0.0)) for n in todo), 2)


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
            if rep.action == "rerun" and rep.from_stage:
                names = [s.name for s in pipeline.plan_for(doc)]
                new.resume, new.completed_stages = True, names[: names.index(rep.from_stage)]
            db.add(new)
            db.flush()
            job_id = new.id
        done.append({**asdict(rep), "queued_job_id": job_id})
    return done
