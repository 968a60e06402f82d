"""An upload's bytes, spooled, become a document and its queued job: the upload route's and a live call's
(api/routes/live.py) one way in."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import limits
from api.schemas import UploadAccepted
from ingestflow.audio import whisper
from ingestflow.auth import Owner
from ingestflow.db import Document, Job, JobStatus, User, new_id
from ingestflow.detect import check_name_agrees, detect
from ingestflow.display import visible
from ingestflow.errors import NotFound, PermanentError
from ingestflow.pipeline import plan_for
from ingestflow.settings import Settings
from ingestflow.stores import storage


def accept(db: Session, user: Owner, settings: Settings, tmp: Path, sha: str, size: int, *, filename: str,
           language: str | None, title: str | None, collection: str | None, redact: bool,
           translate: bool = False) -> UploadAccepted:
    """A spooled file (an upload's, or a live call's) becomes a document and its queued job, once for the same
    bytes; the spool file is gone afterwards, stored or not."""
    try:
        detected = detect(tmp, filename)  # UnsupportedFormat: 415 (api/errors.py)
        check_name_agrees(filename, detected)
        translate = translate and detected.kind == "audio"  # a document has no recording to translate
        if translate:
            _check_translatable(settings, language)
        # The owner's setting is a policy: an upload can ask for redaction, never opt out of it.
        owner, existing = _owner_and_copy(db, user, sha)
        redacting = redact or owner.redact_by_default
        if existing:
            if existing.redact != redacting:
                # Answering with the document as it is would hand back the unredacted text to an upload that
                # asked for redaction (or the other way round).
                raise HTTPException(status.HTTP_409_CONFLICT, f"these bytes are document {existing.id}, "
                                    f"{'redacted' if existing.redact else 'not redacted'}; delete it to upload "
                                    f"them {'without' if existing.redact else 'with'} redaction")
            if translate and not existing.translate:
                return _translate_stored(db, existing)
            return _duplicate(db, existing.id)
        if settings.storage_quota_bytes is not None:
            # Counted under a lock on the owner's row, held to the commit below: parallel uploads of one owner
            # cannot both take the same room. Refused before the blob is stored, so nothing is left behind.
            limits.reserve_quota(db, user.id, size, settings.storage_quota_bytes)
        storage.commit(tmp, settings.files_dir, sha)
    finally:
        tmp.unlink(missing_ok=True)
    doc = Document(
        id=new_id(), owner_id=user.id, sha256=sha, filename=filename, title=visible(title or filename),
        collection=collection,
        kind=detected.kind, format=detected.format, mime_type=detected.mime_type, size_bytes=size,
        language=language, redact=redacting, keep_original=redacting and owner.keep_original, translate=translate,
    )
    db.add(doc)
    job = Job.for_document(doc)
    db.add(job)
    try:
        db.commit()  # both rows in one flush and one commit: the fewest round trips under a burst
    except IntegrityError:
        # The same bytes raced in from a parallel request of this owner: that one wins.
        db.rollback()
        winner = db.scalar(select(Document.id).where(Document.owner_id == user.id, Document.sha256 == sha))
        assert winner is not None
        return _duplicate(db, winner)
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
    db.commit()
    return UploadAccepted(document_id=doc.id, job_id=job.id, status=JobStatus.queued.value, duplicate=True)


def _check_translatable(settings: Settings, language: str | None) -> None:
    try:
        whisper.model_for(settings, language=language, translate=True)
    except PermanentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from exc


def _owner_and_copy(db: Session, user: Owner, sha: str) -> tuple[User, Document | None]:
    """The caller's row (what the owner set, as it is now) and their document of these bytes if there is one, in
    one round trip: an upload makes few, and under a burst each is a wait for the pool and the GIL."""
    row = db.execute(select(User, Document)
                     .outerjoin(Document, (Document.owner_id == User.id) & (Document.sha256 == sha))
                     .where(User.id == user.id)).one_or_none()
    if row is None:
        raise NotFound("user", user.id)
    return row[0], row[1]


def _duplicate(db: Session, document_id: str) -> UploadAccepted:
    """The same bytes again: the existing document and its latest job, so a client can poll what it was given."""
    job = Job.latest_of(db, document_id)
    return UploadAccepted(document_id=document_id, job_id=job.id if job else None,
                          status=JobStatus(job.status).value if job else "duplicate", duplicate=True)
