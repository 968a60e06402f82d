"""An upload's bytes, spooled, become a document and its queued job: the upload route's and a live call's
(api/routes/live.py) one way in. Uploads that arrive together are written together (api/group_commit.py): one
transaction, a few statements and one commit for all of them, not four round trips and a commit each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, status
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import limits
from api.schemas import UploadAccepted
from ingestflow.audio import whisper
from ingestflow.auth import Owner
from ingestflow.db import Document, Job, JobStatus, User, new_id
from ingestflow.detect import Detected, check_name_agrees, detect
from ingestflow.display import visible
from ingestflow.errors import NotFound, PermanentError
from ingestflow.pipeline import plan_for
from ingestflow.settings import Settings
from ingestflow.stores import storage

# What an upload of a group comes to: its answer, or the error it is answered with (409, 413, ...).
Outcome = UploadAccepted | Exception


@dataclass(frozen=True)
class Spooled:
    """An upload on disk whose bytes were checked, waiting for its rows."""

    owner: Owner
    tmp: Path
    sha: str
    size: int
    detected: Detected
    filename: str
    language: str | None
    title: str | None
    collection: str | None
    redact: bool
    translate: bool


def check(settings: Settings, user: Owner, tmp: Path, sha: str, size: int, *, filename: str, language: str | None,
          title: str | None, collection: str | None, redact: bool, translate: bool = False) -> Spooled:
    """What needs no database: the format, from the bytes (415), the name agreeing with it, and a translation
    only where a model can make one (422). A refused upload's spool file is removed."""
    try:
        detected = detect(tmp, filename)  # UnsupportedFormat: 415 (api/errors.py)
        check_name_agrees(filename, detected)
        translate = translate and detected.kind == "audio"  # a document has no recording to translate
        if translate:
            _check_translatable(settings, language)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Spooled(user, tmp, sha, size, detected, filename, language, title, collection, redact, translate)


def accept(db: Session, user: Owner, settings: Settings, tmp: Path, sha: str, size: int, *, filename: str,
           language: str | None, title: str | None, collection: str | None, redact: bool,
           translate: bool = False) -> UploadAccepted:
    """One spooled file (a live call's) becomes a document and its queued job, once for the same bytes; the spool
    file is gone afterwards, stored or not."""
    item = check(settings, user, tmp, sha, size, filename=filename, language=language, title=title,
                 collection=collection, redact=redact, translate=translate)
    [outcome] = accept_many(db, settings, [item])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def accept_many(db: Session, settings: Settings, items: list[Spooled]) -> list[Outcome]:
    """Each upload's outcome, in order: all stored in one transaction with one commit; an upload refused (the same
    bytes in another redaction, over quota) is answered so and does not hold back the others. Every spool file
    is gone afterwards, stored or not."""
    try:
        return _commit(db, settings, items)
    finally:
        for item in items:
            item.tmp.unlink(missing_ok=True)


def _commit(db: Session, settings: Settings, items: list[Spooled]) -> list[Outcome]:
    try:
        outcomes, stored = _write(db, settings, items)
        storage.commit(settings.files_dir, stored)  # the blobs on disk before the rows that name them
        db.commit()
    except IntegrityError:
        # The same bytes of an owner raced in from another API process: that one wins. Each upload again on its
        # own, so that only the one that lost becomes a duplicate.
        db.rollback()
        if len(items) > 1:
            return [_commit(db, settings, [item])[0] for item in items]
        winner = db.scalar(select(Document.id).where(Document.owner_id == items[0].owner.id,
                                                     Document.sha256 == items[0].sha))
        assert winner is not None
        return [_duplicate(db, winner)]
    return outcomes


def _write(db: Session, settings: Settings, items: list[Spooled]) -> tuple[list[Outcome], list[tuple[Path, str]]]:
    """Each upload's outcome, and the spool files to store (path, SHA-256) for those that become documents. For
    the whole group: a budget upsert per owner, a select of the owners and one of their documents of these bytes,
    a lock and a sum where a storage quota is set, and the documents with their jobs inserted at the commit."""
    refused = _over_budget(db, settings, items)
    owner_ids = {item.owner.id for item in items}
    owners = {u.id: u for u in db.scalars(select(User).where(User.id.in_(owner_ids)))}
    copies = {(d.owner_id, d.sha256): d for d in db.scalars(select(Document).where(
        tuple_(Document.owner_id, Document.sha256).in_({(item.owner.id, item.sha) for item in items})))}
    # Counted under a lock on the owners' rows, held to the commit: parallel uploads of one owner (another API
    # process's) cannot both take the same room. Refused before the blob is stored, so nothing is left behind.
    used = None if settings.storage_quota_bytes is None else limits.lock_stored_bytes(db, sorted(owner_ids))
    outcomes: dict[int, Outcome] = {}
    stored: list[tuple[Path, str]] = []
    # Inserted in key order: two API processes' groups that share keys wait for each other, never deadlock.
    for i in sorted(range(len(items)), key=lambda i: (items[i].owner.id, items[i].sha)):
        if i in refused:
            outcomes[i] = refused[i]
            continue
        try:
            accepted = outcomes[i] = _one(db, settings, items[i], owners, copies, used)
            if not accepted.duplicate:
                stored.append((items[i].tmp, items[i].sha))
        except (HTTPException, NotFound) as exc:
            outcomes[i] = exc
    return [outcomes[i] for i in range(len(items))], stored


def _over_budget(db: Session, settings: Settings, items: list[Spooled]) -> dict[int, Exception]:
    """429 for the uploads past their owner's budget (api/limits.py): each owner's tokens spent for all of its
    uploads in the group by one statement; the first as many as it had go ahead."""
    if settings.upload_rate_per_s <= 0:
        return {}
    by_owner: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_owner.setdefault(item.owner.id, []).append(i)
    refused: dict[int, Exception] = {}
    for owner_id in sorted(by_owner):  # every group locks buckets in one order: two wait, never deadlock
        mine = by_owner[owner_id]
        granted, wait_s = limits.take(db, "upload", owner_id, settings.upload_rate_per_s, settings.upload_burst,
                                      len(mine))
        refused.update((i, limits.refusal("uploads", settings.upload_rate_per_s, settings.upload_burst, wait_s))
                       for i in mine[granted:])
    return refused


def _one(db: Session, settings: Settings, item: Spooled, owners: dict[str, User],
         copies: dict[tuple[str, str], Document], used: dict[str, int] | None) -> UploadAccepted:
    owner = owners.get(item.owner.id)
    if owner is None:
        raise NotFound("user", item.owner.id)
    # The owner's setting is a policy: an upload can ask for redaction, never opt out of it.
    redacting = item.redact or owner.redact_by_default
    existing = copies.get((owner.id, item.sha))  # stored before, or earlier in this group
    if existing:
        if existing.redact != redacting:
            # Answering with the document as it is would hand back the unredacted text to an upload that asked
            # for redaction (or the other way round).
            raise HTTPException(status.HTTP_409_CONFLICT, f"these bytes are document {existing.id}, "
                                f"{'redacted' if existing.redact else 'not redacted'}; delete it to upload them "
                                f"{'without' if existing.redact else 'with'} redaction")
        if item.translate and not existing.translate:
            return _translate_stored(db, existing)
        return _duplicate(db, existing.id)
    if used is not None and settings.storage_quota_bytes is not None:
        if used[owner.id] + item.size > settings.storage_quota_bytes:
            raise limits.quota_refusal(used[owner.id], item.size, settings.storage_quota_bytes)
        used[owner.id] += item.size
    doc = Document(
        id=new_id(), owner_id=owner.id, sha256=item.sha, filename=item.filename,
        title=visible(item.title or item.filename), collection=item.collection, kind=item.detected.kind,
        format=item.detected.format, mime_type=item.detected.mime_type, size_bytes=item.size,
        language=item.language, redact=redacting, keep_original=redacting and owner.keep_original,
        translate=item.translate,
    )
    job = Job.for_document(doc)
    db.add_all((doc, job))
    copies[(owner.id, item.sha)] = doc
    return UploadAccepted(document_id=doc.id, job_id=job.id, status=JobStatus.queued.value, duplicate=False)


def _translate_stored(db: Session, doc: Document) -> UploadAccepted:
    """The same recording again, now asking for its translation: a job that runs the translate stage and what
    follows it (chunk, embed, ...) on what was transcribed before, rather than a refusal or a silent no."""
    latest = Job.latest_of(db, doc.id)
    if latest is not None and not JobStatus(latest.status).terminal:
        raise HTTPException(status.HTTP_409_CONFLICT, f"these bytes are document {doc.id}, whose job is still "
                            "running: ask for its translation again when it has finished")
    doc.translate = True
    job = Job.for_document(doc)
    names = [s.name for s in plan_for(doc)]
    # A redacted recording's transcripts were redacted in place: the stages after translate would read
    # placeholders as what was said (and overwrite a kept original with them), so it is transcribed again.
    job.resume, job.completed_stages = True, [] if doc.redact else names[: names.index("translate")]
    db.add(job)
    return UploadAccepted(document_id=doc.id, job_id=job.id, status=JobStatus.queued.value, duplicate=True)


def _check_translatable(settings: Settings, language: str | None) -> None:
    try:
        whisper.model_for(settings, language=language, translate=True)
    except PermanentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from exc


def _duplicate(db: Session, document_id: str) -> UploadAccepted:
    """The same bytes again: the existing document and its latest job, so a client can poll what it was given."""
    job = Job.latest_of(db, document_id)
    return UploadAccepted(document_id=document_id, job_id=job.id if job else None,
                          status=JobStatus(job.status).value if job else "duplicate", duplicate=True)
