"""Response models: what the API promises to return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints

from ingestflow.db import AuditAction, DeliveryStatus
from ingestflow.jobs.jobview import JobView
from ingestflow.jobs.retention import RetentionAction
from ingestflow.notify.events import Event
from ingestflow.notify.targets import BadTarget, check_url

T = TypeVar("T")


class ErrorOut(BaseModel):
    """Every error answer except request validation (422, FastAPI's list of what failed where)."""

    detail: str


class UploadAccepted(BaseModel):
    document_id: str
    job_id: str | None
    status: str
    duplicate: bool


class IndexingStatus(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    vector_indexed: bool
    graph_indexed: bool
    entities_extracted: bool
    chunk_count: int
    entity_count: int
    models: dict[str, Any]
    last_error: str | None
    indexed_at: datetime | None


class DocumentOut(IndexingStatus):
    id: str
    title: str
    filename: str
    collection: str | None
    kind: str
    format: str
    mime_type: str
    size_bytes: int
    language: str | None
    page_count: int | None
    duration_s: float | None
    language_probability: float | None
    created_at: datetime
    redact: bool  # personal data replaced by typed placeholders in everything served
    keep_original: bool  # the unredacted text kept for the owner (`version=original`)
    redacted_spans: int | None  # how many were replaced, once the redact stage has run
    translate: bool = False  # an English translation kept beside the transcript (`version=translation`)
    latest_job: JobView | None = None


class OwnerSettings(BaseModel):
    """An owner's defaults for uploads: redact every upload (an upload cannot opt out), and keep the
    unredacted text of redacted uploads for the owner alone."""

    model_config = ConfigDict(from_attributes=True)
    redact_by_default: StrictBool = False
    keep_original: StrictBool = False


def _a_number(value: Any) -> Any:
    # JSON's 30.0 is the integer 30 (as JSON Schema says), but "30" or true is no number of days.
    if isinstance(value, str | bool):
        raise ValueError("a whole number of days")
    return value


class RetentionRule(BaseModel):
    """After `days` from upload, the documents are deleted, or keep only their redacted form."""

    model_config = ConfigDict(from_attributes=True)
    days: Annotated[int, BeforeValidator(_a_number)] = Field(ge=1, le=36_500)
    action: RetentionAction = RetentionAction.delete


CollectionName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class RetentionPolicies(BaseModel):
    """The owner's rules: `default` for every document not in a collection with a rule of its own (none: kept
    until deleted), `collections` by name. One rule per collection by construction."""

    default: RetentionRule | None = None
    collections: dict[CollectionName, RetentionRule] = Field(default_factory=dict, max_length=200)


class AuditOut(BaseModel):
    """A removal: what, whose, when, by whom or which policy, and what went from which store."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    at: datetime
    action: AuditAction
    document_id: str | None  # none for a key's record
    key_id: str | None  # a revoked key's id
    title: str
    filename: str | None
    actor: str
    policy_id: str | None
    removed: dict[str, Any]  # store -> what went from it: free-form, as each store counts


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class KeyOut(BaseModel):
    """One of the owner's API keys: never the key itself (shown once, when made), only its first characters."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    label: str | None
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    current: bool = False  # the key this request was made with


class KeyIn(BaseModel):
    """A new key for the caller's owner: a label to tell it apart, and when it stops working (none: until
    revoked)."""

    label: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$")] | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650), BeforeValidator(_a_number)] | None = None


class KeyCreated(KeyOut):
    key: str  # shown here only


def _deliverable(url: Any) -> Any:
    # Before the pattern, so a refused URL is told why ("must be http or https, not 'ftp'"), not shown a regex.
    if not isinstance(url, str):
        return url
    try:
        return check_url(url)
    except BadTarget as exc:
        raise ValueError(str(exc)) from exc


# What the schema promises (so a client, or the API fuzz test, knows what is accepted): http(s), a host name or
# IPv4 address, a port that is one, printable ASCII after it (a URL's other characters are percent-encoded).
_PORT = r"([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
WEBHOOK_URL = rf"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(:{_PORT})?([/?#][\x21-\x7e]*)?$"


Secret = Annotated[str, StringConstraints(min_length=16, max_length=200, pattern=r"^[\x21-\x7e]*$")]


class WebhookIn(BaseModel):
    """A receiver: an http(s) URL, the events it wants (all if not said), and the secret its deliveries are signed
    with (16-200 printable ASCII characters; one is made if not given, and shown once)."""

    url: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=WEBHOOK_URL),
                   BeforeValidator(_deliverable)]
    events: list[Event] = Field(default_factory=lambda: list(Event), min_length=1, max_length=len(Event))
    secret: Secret | None = None
    description: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] | None = None


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    url: str
    events: list[Event]
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str  # shown here only: keep it where the receiver can check signatures


class DeliveryOut(BaseModel):
    """One event for one webhook: pending (waiting for its first or next attempt), delivered, or failed (still
    refused when it was a day old; see webhook_give_up_s)."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    event: Event
    event_id: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None

