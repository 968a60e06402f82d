"""The events a webhook can subscribe to, and writing one: a delivery row per subscribed webhook of the owner,
in the caller's transaction."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingestflow.db import Document, Job, JobStatus, Webhook, WebhookDelivery, new_id, utcnow


class Event(enum.StrEnum):
    job_completed = "job.completed"
    job_failed = "job.failed"
    document_deleted = "document.deleted"
    document_expired = "document.expired"


class EventBody(BaseModel):
    """What a receiver gets, as JSON. `id` is the event's: the same on every attempt, so a receiver that saw it
    already can answer 2xx and ignore it."""

    id: str
    event: Event
    at: datetime
    document_id: str
    title: str
    filename: str
    collection: str | None
    job_id: str | None = None
    error: str | None = None


def subscribed(webhook: Webhook, event: Event) -> bool:
    return event.value in webhook.events


def emit(db: Session, owner_id: str, body: EventBody) -> int:
    """Queues `body` for each of the owner's webhooks that wants it; returns how many. Nothing is sent here."""
    hooks = [w for w in db.scalars(select(Webhook).where(Webhook.owner_id == owner_id)) if subscribed(w, body.event)]
    for hook in hooks:
        db.add(WebhookDelivery(webhook_id=hook.id, owner_id=owner_id, event=body.event.value, event_id=body.id,
                               body=body.model_dump(mode="json"), next_attempt_at=body.at))
    return len(hooks)


def _about(doc: Document, event: Event, job: Job | None = None) -> EventBody:
    return EventBody(id=new_id(), event=event, at=utcnow(), document_id=doc.id, title=doc.title,
                     filename=doc.filename, collection=doc.collection, job_id=job.id if job else None,
                     error=job.error if job else None)


def job_ended(db: Session, job: Job, doc: Document | None) -> None:
    """A job completed or failed (its status already set)."""
    if doc is not None:
        event = Event.job_completed if job.status == JobStatus.completed else Event.job_failed
        emit(db, job.owner_id, _about(doc, event, job))


def document_removed(db: Session, doc: Document, event: Event) -> None:
    """A document deleted by its owner, or expired by a retention policy (before its row goes)."""
    emit(db, doc.owner_id, _about(doc, event))
