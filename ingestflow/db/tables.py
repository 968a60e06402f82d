"""The core tables: users and their API keys, documents, jobs, conversations and their turns, chunk texts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingestflow.db.base import Base, UTCDateTime, new_id, utcnow


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
    # A recording's English translation kept beside its transcript, chunked and searchable with it.
    translate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

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
    translate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # and the translate stage

    @classmethod
    def for_document(cls, doc: Document) -> Job:
        # Its id now, not at the flush: an upload group answers with it before its commit (api/intake.py).
        return cls(id=new_id(), document_id=doc.id, owner_id=doc.owner_id, kind=doc.kind, redact=doc.redact,
                   translate=doc.translate)

    @classmethod
    def latest_of(cls, db: Session, document_id: str) -> Job | None:
        """The document's newest job: the one its status, a duplicate upload's answer and the backfill go by."""
        return db.scalar(select(cls).where(cls.document_id == document_id).order_by(cls.created_at.desc()).limit(1))


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
