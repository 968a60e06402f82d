"""What governs an owner's documents: retention policies, the audit of removals and revoked keys, webhooks and
their deliveries."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ingestflow.db.base import Base, UTCDateTime, new_id, utcnow


class RetentionPolicy(Base):
    """After `days`, an owner's documents (those of `collection`, or all where it is None and no collection's
    own policy applies) are deleted, or keep only their redacted form (`action` "keep_redacted")."""

    __tablename__ = "retention_policies"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    collection: Mapped[str | None] = mapped_column(String(200))
    days: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))  # ingestflow.jobs.retention.RetentionAction
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditAction(enum.StrEnum):
    """What an audit record says happened: to a document, or to an API key."""

    deleted = "deleted"  # by its owner
    cancelled = "cancelled"  # its job stopped, its index purged, its file kept for a retry
    expired = "expired"  # deleted by a retention policy
    original_removed = "original_removed"  # a policy kept only its redacted form
    redacted = "redacted"  # a policy queued a redacting run, before its original goes
    key_revoked = "key_revoked"  # an API key revoked by its owner


class AuditRecord(Base):
    """A removal: what, whose, when, by whom or which policy, and what went from which store; or a key revoked.
    Retention never deletes these; they go only with their owner."""

    __tablename__ = "audit_records"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(20))  # AuditAction
    # No foreign keys: the document is gone. A key's record has no document, and its title names the key.
    document_id: Mapped[str | None] = mapped_column(String(32), index=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))  # "user", or "retention policy <id>"
    policy_id: Mapped[str | None] = mapped_column(String(32))
    removed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # store -> what went from it


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  # waiting for its first or next attempt
    delivered = "delivered"  # a 2xx answer
    failed = "failed"  # still refused when the event was `webhook_give_up_s` old


class Webhook(Base):
    """An owner's receiver of events (ingestflow/notify): where, which events, and the secret deliveries are
    signed with (kept as given: signing needs it; it is shown only when the webhook is created)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)  # values of ingestflow.notify.events.Event
    secret: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook, written in the transaction of the change it reports, and its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_delivery_webhook_event"),
        # What the dispatcher asks every second: is anything due?
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where="status = 'pending'"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
