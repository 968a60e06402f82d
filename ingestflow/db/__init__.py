"""Metadata rows in PostgreSQL (or SQLite): `base` (ids, timestamps), `tables` (users, keys, documents, jobs,
conversations, chunk texts), `records` (retention, audit, webhooks), `engine` (engines, sessions, migrations)."""

from ingestflow.db.base import Base, UTCDateTime, new_id, utcnow
from ingestflow.db.engine import READ_ONLY, get_engine, init_db, owned, session_scope
from ingestflow.db.records import (
    AuditAction,
    AuditRecord,
    DeliveryStatus,
    RetentionPolicy,
    Webhook,
    WebhookDelivery,
)
from ingestflow.db.tables import (
    ACTIVE_STATUSES,
    ApiKey,
    ChunkText,
    Conversation,
    Document,
    Job,
    JobStatus,
    Turn,
    User,
)

__all__ = ["ACTIVE_STATUSES", "ApiKey", "AuditAction", "AuditRecord", "Base", "ChunkText", "Conversation",
           "DeliveryStatus", "Document", "Job", "JobStatus", "READ_ONLY", "RetentionPolicy", "Turn", "UTCDateTime",
           "User", "Webhook", "WebhookDelivery", "get_engine", "init_db", "new_id", "owned", "session_scope",
           "utcnow"]
