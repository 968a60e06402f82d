"""Metadata rows: users and their API keys, documents, jobs. PostgreSQL (embedded or external); SQLite still works
for a single process and for importing older data directories."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps come back timezone-aware (UTC) on every backend; SQLite would otherwise drop the zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.completed, JobStatus.failed, JobStatus.cancelled)


# Queued or running: the job still has work ahead of it.
ACTIVE_STATUSES = (JobStatus.queued, JobStatus.running)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The owner's defaults for an upload that does not say: redact personal data, and keep the unredacted
    # text beside the redacted one (readable by the owner alone, `version=original`).
    redact_by_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    keep_original: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiKey(Base):
    __tablename__ = "api_keys"
    # Only the key's SHA-256 is stored: a leaked database does not leak working keys.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, default=new_id)  # what lists and revocation name
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(12), default="")  # the key's first characters, to tell keys apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("owner_id", "sha256", name="uq_document_owner_bytes"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(500))
    title: Mapped[str] = mapped_column(String(500))
    collection: Mapped[str | None] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "text" | "audio"
    format: Mapped[str] = mapped_column(String(10))  # pdf, docx, ..., wav, mp3, ...
    mime_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Personal data replaced by typed placeholders before anything is chunked, embedded or graphed.
    redact: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    keep_original: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    redacted_spans: Mapped[int | None] = mapped_column(Integer)

    vector_indexed: Mapped[bool] = mapped_column(Boolean, default=False)
    graph_indexed: Mapped[bool] = mapped_column(Boolean, default=False)
    entities_extracted: Mapped[bool] = mapped_column(Boolean, default=False)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    entity_count: Mapped[int] = mapped_column(Integer, default=0)
    page_count: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    language_probability: Mapped[float | None] = mapped_column(Float)
    # Which model and version produced each index, so the backfill can find stale ones.
    models: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Stage name -> the version of its rules it last ran at (ingestflow.pipeline.Stage.version).
    stage_versions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default="{}")
    last_error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_owner", "status", "owner_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[JobStatus] = mapped_column(Enum(JobStatus, native_enum=False), default=JobStatus.queued)
    # Mirrors of Prefect's view, kept so lists and filters work when Prefect is down.
    stage: Mapped[str | None] = mapped_column(String(20))
    # The Prefect task run doing `stage` for this job now (a batched stage's run serves many jobs).
    stage_run: Mapped[str | None] = mapped_column(String(200))
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    batch_flow_run_id: Mapped[str | None] = mapped_column(String(36))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A resumed run (retry, crash recovery) skips the stages listed here and reuses what they produced.
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    completed_stages: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What a stage wants the user to know without failing, e.g. why an LLM edit was rejected.
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Only ever a reason about the document (corrupt, unsupported, too large, timed out).
    error: Mapped[str | None] = mapped_column(Text)
    error_retryable: Mapped[bool | None] = mapped_column(Boolean)
    # Orchestrator or store trouble (Prefect 5xx, a killed process): never the document's fault, so the job is
    # re-queued with backoff; the last such reason and how often it happened.
    infra_note: Mapped[str | None] = mapped_column(Text)
    infra_retries: Mapped[int] = mapped_column(Integer, default=0)
    # Per stage: wall, CPU and waiting seconds, attempts, model (see ingestflow.pipeline.StageMetrics).
    stage_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # Set when the dispatcher claims the job for a flow run; the run must present the same key to start it,
    # so a stale or duplicated run can never process a job that was handed out again.
    dispatch_key: Mapped[str | None] = mapped_column(String(36))
    dispatch_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Whether the plan includes the redact stage (the document's setting when the job was made).
    redact: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @classmethod
    def for_document(cls, doc: Document) -> Job:
        return cls(document_id=doc.id, owner_id=doc.owner_id, kind=doc.kind, redact=doc.redact)


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


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Turn(Base):
    """One question or answer. Turns are also embedded (Chroma collection `turns`) so later questions in the
    same conversation can retrieve them."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("conversation_id", "index", name="uq_turn_position"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(10))  # "user" | "assistant"
    text: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChunkText(Base):
    """A chunk's text beside its vector, for lexical search (ingestflow/stores/lexical.py). On PostgreSQL the migration
    adds `tsv` and `token_count`, generated from `text`; they are not mapped, since only SQL reads them."""

    __tablename__ = "chunks"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)  # the vector's id (stores.vectors.chunk_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    chunk_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    collection: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    # The vector's metadata as stored in Chroma: provenance for a hit found here alone.
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while flow processes write; busy_timeout waits out the writer lock.
    # pysqlite's own BEGIN handling is switched off so _begin_immediate decides how transactions start.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


READ_ONLY = "ingestflow_read_only"


def _begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when another
    # process wrote in between (busy_timeout cannot help a stale WAL snapshot); taking the write lock
    # up front makes concurrent writers queue instead. Read-only sessions take a plain snapshot: under a
    # burst of uploads, auth lookups queueing for the write lock were most of an upload's latency.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


@lru_cache
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
    else:
        # The API serves up to 40 requests at once from its thread pool; a pool of 5 + 10 made a burst of
        # uploads queue for connections. Connections open only when needed.
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
    return engine


def init_db(url: str) -> Engine:
    """Bring the database to the latest schema (Alembic), so an existing data directory upgrades in place."""
    from ingestflow.migrate import upgrade

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    return get_engine(url)


@lru_cache
def _sessionmaker(url: str, read_only: bool) -> sessionmaker[Session]:
    engine = get_engine(url)
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}) if read_only else engine,
                        expire_on_commit=False)


@contextmanager
def session_scope(url: str, read_only: bool = False) -> Iterator[Session]:
    """One transaction. `read_only` sessions must not write: on SQLite they read a snapshot without
    taking the write lock, so a write in one could fail with SQLITE_BUSY instead of waiting."""
    session = _sessionmaker(url, read_only)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
