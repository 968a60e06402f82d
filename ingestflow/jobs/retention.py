"""Retention: an owner's documents expire on a policy, per owner and per collection (a collection's own policy
wins over the owner's). After its days a document is deleted with the same cascade as `DELETE
/v1/documents/{id}` (ingestflow/jobs/removal.py), or keeps only its redacted form: the unredacted text kept
for its owner and the uploaded bytes go, and a document that was never redacted is queued to be redacted first
(the next pass then removes its upload). Every removal leaves an audit record; retention never removes those.

Applied by the scheduled `retention` deployment (flows/retention.py, prefect.yaml), runnable by hand from the
Prefect UI; `ingestflow retention --dry-run` lists what it would do.
"""

from __future__ import annotations

import enum
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingestflow.db import ACTIVE_STATUSES, AuditAction, Document, Job, RetentionPolicy, session_scope, utcnow
from ingestflow.errors import NotFound
from ingestflow.jobs import removal
from ingestflow.refs import work_dir
from ingestflow.settings import Settings
from ingestflow.stores import storage


class RetentionAction(enum.StrEnum):
    """What a policy does to a document past its days."""

    delete = "delete"
    keep_redacted = "keep_redacted"


class Step(enum.StrEnum):
    """What one pass does to an expired document: delete it, or one step of keeping it only redacted."""

    delete = "delete"
    redact = "redact"  # queue a run that redacts it from its upload
    remove_original = "remove_original"  # its unredacted text and upload go


@dataclass(frozen=True)
class Expiry:
    document_id: str
    owner_id: str
    title: str
    collection: str | None
    created_at: datetime
    policy_id: str
    days: int
    action: Step

    @property
    def actor(self) -> str:
        return f"retention policy {self.policy_id}"


def policy_for(policies: Sequence[RetentionPolicy], collection: str | None) -> RetentionPolicy | None:
    """The collection's own policy, else the owner's (the one without a collection)."""
    own = [p for p in policies if p.collection is not None and p.collection == collection]
    return own[0] if own else next((p for p in policies if p.collection is None), None)


def _step(db: Session, settings: Settings, doc: Document, policy: RetentionPolicy) -> Step | None:
    if policy.action == RetentionAction.delete:
        return Step.delete
    busy = db.scalar(select(func.count()).select_from(Job)
                     .where(Job.document_id == doc.id, Job.status.in_(ACTIVE_STATUSES))) or 0
    if busy:
        return None  # the next pass, once its run has finished
    if not doc.redact:
        return Step.redact
    upload_left = storage.blob_path(settings.files_dir, doc.sha256).exists() and not removal.shared_bytes(db, doc)
    unredacted_left = doc.keep_original or (work_dir(settings, doc.id) / "original").exists() or upload_left
    return Step.remove_original if unredacted_left and doc.indexed_at is not None else None


def plan(db: Session, settings: Settings, now: datetime | None = None) -> list[Expiry]:
    """What the policies expire at `now`, oldest first."""
    now = now or utcnow()
    by_owner: dict[str, list[RetentionPolicy]] = {}
    for each in db.scalars(select(RetentionPolicy)):
        by_owner.setdefault(each.owner_id, []).append(each)
    due = []
    for owner_id, policies in by_owner.items():
        for doc in db.scalars(select(Document).where(Document.owner_id == owner_id).order_by(Document.created_at)):
            policy = policy_for(policies, doc.collection)
            if policy is None or doc.created_at > now - timedelta(days=policy.days):
                continue
            step = _step(db, settings, doc, policy)
            if step:
                due.append(Expiry(doc.id, owner_id, doc.title, doc.collection, doc.created_at, policy.id,
                                  policy.days, step))
    return due


def apply(settings: Settings, due: Sequence[Expiry]) -> list[Expiry]:
    """Carries out each expiry in a transaction of its own; returns those done (a document deleted meanwhile is
    skipped; a busy store raises a TransientError for the flow's retry, and what was done stays done)."""
    done = []
    for expiry in due:
        with session_scope(settings.sqlalchemy_url) as db:
            try:
                doc = removal.owned_document(db, expiry.owner_id, expiry.document_id)
            except NotFound:
                continue
            if expiry.action == Step.delete:
                removal.delete(db, settings, expiry.owner_id, doc.id, action=AuditAction.expired,
                               actor=expiry.actor, policy_id=expiry.policy_id)
            elif expiry.action == Step.redact:
                _queue_redaction(db, doc, expiry)
            else:
                _remove_original(db, settings, doc, expiry)
        done.append(expiry)
    return done


def _queue_redaction(db: Session, doc: Document, expiry: Expiry) -> None:
    """A document kept only redacted that never was: redacted from its upload first (the whole pipeline, with
    the redact stage), and its upload removed by a later pass once that run has completed."""
    doc.redact, doc.keep_original = True, False
    doc.indexed_at = None  # not served until the redacted run completes
    db.add(Job.for_document(doc))
    removal.audit(db, doc, AuditAction.redacted,
                  {"queued": "a run that redacts it; its upload goes once that completes"}, expiry.actor,
                  expiry.policy_id)


def _remove_original(db: Session, settings: Settings, doc: Document, expiry: Expiry) -> None:
    original = work_dir(settings, doc.id) / "original"
    shared = removal.shared_bytes(db, doc)
    removal.audit(db, doc, AuditAction.original_removed, {
        "unredacted_text": "removed" if original.exists() else "none kept",
        "file": "kept: another document has the same bytes" if shared else "removed",
    }, expiry.actor, expiry.policy_id)
    doc.keep_original = False
    db.flush()
    shutil.rmtree(original, ignore_errors=True)
    storage.remove_if_unreferenced(settings.files_dir, doc.sha256, still_used=shared > 0)
