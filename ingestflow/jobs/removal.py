"""Taking a document out, one use-case each: a cancel (its job stopped, its index purged, its file and what parse
and chunk made kept for a retry) and a delete (everything of it, from every store). The API's routes only
translate; a retention policy (ingestflow/jobs/retention.py) deletes through the same path. Each writes an audit
record of what went from which store, in the transaction that removes the document's rows.

The order is the rule: the cancel is committed first, then the stores are purged, then the rows go. Running
stages see the cancel (the graph stage under the lock the purge takes, the embed stage after writing), so what
they wrote before is purged here and nothing is written after.
"""

from __future__ import annotations

import shutil
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingestflow.db import ACTIVE_STATUSES, AuditAction, AuditRecord, Document, Job, owned, session_scope
from ingestflow.jobs.control import forget_index, mark_cancelled
from ingestflow.jobs.purge import Purged, purge_document
from ingestflow.notify import events
from ingestflow.notify.events import Event
from ingestflow.refs import work_dir
from ingestflow.settings import Settings
from ingestflow.stores import storage

USER = "user"


# Removals a webhook hears of.
_EVENTS = {AuditAction.deleted: Event.document_deleted, AuditAction.expired: Event.document_expired}


def owned_job(db: Session, owner_id: str, job_id: str) -> Job:
    return owned(db, Job, owner_id, job_id, "job")


def owned_document(db: Session, owner_id: str, document_id: str) -> Document:
    return owned(db, Document, owner_id, document_id, "document")


def shared_bytes(db: Session, doc: Document) -> int:
    """How many other documents (of any owner) have the same bytes: the stored file is theirs too."""
    return int(db.scalar(select(func.count()).select_from(Document)
                         .where(Document.sha256 == doc.sha256, Document.id != doc.id)) or 0)


def audit(db: Session, doc: Document, action: AuditAction, removed: dict[str, Any], actor: str = USER,
          policy_id: str | None = None) -> None:
    db.add(AuditRecord(owner_id=doc.owner_id, action=action, document_id=doc.id, title=doc.title,
                       filename=doc.filename, actor=actor, policy_id=policy_id, removed=removed))


def _stores(purged: Purged) -> dict[str, Any]:
    return {"vectors": purged.vectors, "lexical_rows": purged.lexical_rows, "graph": purged.graph}


def cancel(settings: Settings, owner_id: str, job_id: str) -> tuple[Job, str | None]:
    """Stop the job and take its document out of the search index and the graph; returns the job and the flow
    run to stop, if one started. A store that is busy raises a TransientError: cancelling again is safe."""
    with session_scope(settings.sqlalchemy_url) as db:
        job = owned_job(db, owner_id, job_id)
        run_id = mark_cancelled(job)
        document_id = job.document_id
    purged = purge_document(settings, owner_id, document_id)
    with session_scope(settings.sqlalchemy_url) as db:
        job = owned_job(db, owner_id, job_id)
        doc = db.get(Document, document_id)
        if doc is not None:
            forget_index(job, doc)
            audit(db, doc, AuditAction.cancelled, {**_stores(purged), "file": "kept, for a retry"})
    return job, run_id


def delete(db: Session, settings: Settings, owner_id: str, document_id: str, *,
           action: AuditAction = AuditAction.deleted, actor: str = USER, policy_id: str | None = None) -> None:
    """The document, its file (unless another document has the same bytes), rows, vectors, lexical rows, graph
    facts and derived files. Its active jobs are cancelled and committed before anything is purged."""
    doc = owned_document(db, owner_id, document_id)
    for job in db.scalars(select(Job).where(Job.document_id == doc.id, Job.status.in_(ACTIVE_STATUSES))):
        mark_cancelled(job)
    db.commit()
    purged = purge_document(settings, doc.owner_id, doc.id)  # busy stores: a TransientError; deleting again is safe
    derived = work_dir(settings, document_id)
    sha = doc.sha256
    shared = shared_bytes(db, doc)
    audit(db, doc, action, {**_stores(purged), "derived_files": derived.exists(),
                            "file": "kept: another document has the same bytes" if shared else "removed"},
          actor, policy_id)
    events.document_removed(db, doc, _EVENTS[action])
    db.delete(doc)
    db.flush()
    storage.remove_if_unreferenced(settings.files_dir, sha, still_used=shared > 0)
    shutil.rmtree(derived, ignore_errors=True)
