"""Upload, list, read and delete documents. Uploads only store and commit: Prefect is never awaited here."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy import select

from api import errors, group_commit, intake
from api.deps import NO_NUL, CurrentUser, IdPath, PageDep, SessionDep, SettingsDep
from api.schemas import DocumentOut, IndexingStatus, Page, UploadAccepted
from ingestflow.answering.summary import Summary
from ingestflow.audio.subtitles import to_srt, to_vtt
from ingestflow.audio.transcript import Transcript, to_txt
from ingestflow.auth import Owner
from ingestflow.db import ACTIVE_STATUSES, Document, Job, JobStatus
from ingestflow.jobs import removal
from ingestflow.jobs.jobview import base_view
from ingestflow.redaction.marker import is_redacted
from ingestflow.refs import work_dir
from ingestflow.settings import Settings
from ingestflow.stores import storage

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=errors.documented(401))

# "current": what search and chat serve (redacted, for a redacted document); "original": the unredacted text,
# where the owner's setting kept it.
Version = Annotated[Literal["current", "original"], Query(description="current (redacted where the document "
                                                                       "is) or original (kept unredacted)")]
ORIGINAL = "original"
LIVE_TRANSCRIPT = "transcript.live.json"  # a live call's settled segments (api/routes/live.py)
IN_LOOP_BYTES = 64 * 1024


def _derived(doc: Document, settings: SettingsDep, name: str, version: str) -> Path:
    """The derived file to serve. For a redacted document: the redact stage's own output, never a fresh parse
    or transcript a re-run has not redacted yet; the original only where it was kept."""
    folder = work_dir(settings, doc.id)
    if version == ORIGINAL:
        if not doc.redact:
            return folder / name  # nothing was redacted: the text is the original
        path = folder / "original" / name
        if not path.exists():
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no unredacted text was kept for this document "
                                "(PUT /v1/settings keep_original=true keeps it for later uploads)")
        return path
    path = folder / name
    if doc.redact and path.exists() and not is_redacted(path):
        raise HTTPException(status.HTTP_409_CONFLICT, "the document is being redacted: try again when its job "
                            "has finished")
    return path


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=UploadAccepted,
             responses=errors.documented(400, 408, 409, 413, 415, 429))
async def upload(
    request: Request,
    file: UploadFile,
    user: CurrentUser,
    settings: SettingsDep,
    language: Annotated[str | None, Form(max_length=16, pattern=NO_NUL)] = None,
    title: Annotated[str | None, Form(max_length=500, pattern=NO_NUL)] = None,
    collection: Annotated[str | None, Form(max_length=200, pattern=NO_NUL)] = None,
    redact: Annotated[bool, Form(description="replace personal data by typed placeholders before indexing; "
                                 "always so where the owner's setting says (PUT /v1/settings)")] = False,
    translate: Annotated[bool, Form(description="a recording's English translation beside its transcript, "
                                    "searchable and cited to seconds; needs a multilingual Whisper model (422 "
                                    "otherwise); ignored for documents")] = False,
) -> UploadAccepted:
    length = request.headers.get("content-length", "")
    declared = int(length) if length.isdigit() else 0
    if declared > settings.max_upload_bytes + 64 * 1024:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"upload exceeds {settings.max_upload_bytes} bytes")
    # The column's length (PostgreSQL enforces it), and no NUL, which PostgreSQL text cannot hold.
    filename = (file.filename or "").replace("\x00", "")[:500] or "upload"
    spool = functools.partial(_spool, file.file, user, settings, filename=filename, language=language, title=title,
                              collection=collection, redact=redact, translate=translate)
    # A small upload is spooled and checked here (a note: 0.15 ms to write, 0.5 ms to check), a larger one in the
    # thread pool, whose trip (a queue, a thread's wake-up, turns of the GIL) costs more than a small one's work.
    item = spool() if (file.size or 0) <= IN_LOOP_BYTES else await run_in_threadpool(spool)
    return await group_commit.writer(settings).submit(item)


def _spool(src: BinaryIO, user: Owner, settings: Settings, *, filename: str, language: str | None, title: str | None,
           collection: str | None, redact: bool, translate: bool) -> intake.Spooled:
    """An upload's bytes to disk, hashed, and checked. Its rows are written with those of the uploads that arrive
    with it (api/group_commit.py), committed before it is answered."""
    tmp, sha, size = storage.spool(src, settings.files_dir, settings.max_upload_bytes)  # TooLarge: 413
    return intake.check(settings, user, tmp, sha, size, filename=filename, language=language, title=title,
                        collection=collection, redact=redact, translate=translate)


def owned(db: SessionDep, user: CurrentUser, document_id: str) -> Document:
    return removal.owned_document(db, user.id, document_id)  # a foreign document answers like a missing one


def _out(doc: Document, db: SessionDep, settings: SettingsDep) -> DocumentOut:
    out = DocumentOut.model_validate(doc, from_attributes=True)
    job = Job.latest_of(db, doc.id)
    out.latest_job = base_view(job, settings) if job else None
    return out


@router.get("", response_model=Page[DocumentOut])
def list_documents(
    db: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    pages: PageDep,
    kind: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    collection: Annotated[str | None, Query(pattern=NO_NUL)] = None,
) -> Page[DocumentOut]:
    query = select(Document).where(Document.owner_id == user.id)
    if kind:
        query = query.where(Document.kind == kind)
    if collection:
        query = query.where(Document.collection == collection)
    return pages.page(db, query, Document.created_at.desc(), lambda d: _out(d, db, settings))


@router.get("/{document_id}", response_model=DocumentOut, responses=errors.documented(404))
def get_document(document_id: IdPath, db: SessionDep, user: CurrentUser, settings: SettingsDep) -> DocumentOut:
    return _out(owned(db, user, document_id), db, settings)


@router.get("/{document_id}/indexing-status", response_model=IndexingStatus, responses=errors.documented(404))
def indexing_status(document_id: IdPath, db: SessionDep, user: CurrentUser) -> IndexingStatus:
    return IndexingStatus.model_validate(owned(db, user, document_id), from_attributes=True)


# response_class=Response: no media type of its own, so the errors are documented as the JSON they are.
@router.get("/{document_id}/content", response_class=Response, responses={
    200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}, **errors.documented(404, 409)})
def content(document_id: IdPath, db: SessionDep, user: CurrentUser, settings: SettingsDep,
            version: Version = "current") -> PlainTextResponse:
    doc = owned(db, user, document_id)
    if doc.kind != "text":
        raise HTTPException(status.HTTP_409_CONFLICT, "an audio document has a transcript, not parsed content")
    path = _derived(doc, settings, "content.md", version)
    if not path.exists():
        raise HTTPException(status.HTTP_409_CONFLICT, "the document has not been parsed yet")
    return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")


@router.get("/{document_id}/summary", response_model=Summary, responses=errors.documented(404, 409))
def summary(document_id: IdPath, db: SessionDep, user: CurrentUser, settings: SettingsDep) -> Summary:
    """A few sentences on what the document is about, each cited to its page or seconds (mode extractive), or
    an LLM's summary of them where one is configured and it names nothing they do not (mode llm)."""
    doc = owned(db, user, document_id)
    path = work_dir(settings, doc.id) / "summary.json"
    if not path.exists():
        raise HTTPException(status.HTTP_409_CONFLICT, "no summary yet: the job has not got that far")
    return Summary.model_validate_json(path.read_text(encoding="utf-8"))


@router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors.documented(404, 503))
def delete_document(document_id: IdPath, db: SessionDep, user: CurrentUser, settings: SettingsDep) -> None:
    removal.delete(db, settings, user.id, document_id)  # busy stores: 503 with Retry-After (api/errors.py)


@router.post("/{document_id}/reindex", status_code=status.HTTP_202_ACCEPTED, response_model=UploadAccepted,
             responses=errors.documented(404, 409))
def reindex(document_id: IdPath, db: SessionDep, user: CurrentUser) -> UploadAccepted:
    """Run the whole pipeline again (e.g. after a model change); refused while a job is still active."""
    doc = owned(db, user, document_id)
    active = db.scalar(
        select(Job).where(Job.document_id == doc.id, Job.status.in_(ACTIVE_STATUSES))
    )
    if active:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {active.id} is still {active.status}")
    job = Job.for_document(doc)
    db.add(job)
    db.commit()
    return UploadAccepted(document_id=doc.id, job_id=job.id, status=JobStatus.queued.value, duplicate=False)


TRANSCRIPT_TYPES = {"txt": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}


@router.get("/{document_id}/transcript", response_class=Response, responses={
    200: {"description": "the transcript: JSON (segments and words with timings), or text, SubRip or WebVTT",
          "content": {"application/json": {"schema": {"type": "object"}},
                      **{t: {"schema": {"type": "string"}} for t in TRANSCRIPT_TYPES.values()}}},
    **errors.documented(404, 409)})
def transcript(
    document_id: IdPath,
    db: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    format: Literal["json", "txt", "srt", "vtt"] = "json",
    version: Annotated[Literal["raw", "improved", "original", "live", "translation"], Query(
        description="raw (as transcribed), improved (cleaned; what is indexed), original (the improved one "
                    "unredacted, where it was kept), live (what a live call's stream settled on; also what raw "
                    "and improved give until the pipeline has transcribed the call) or translation (in English, "
                    "where the recording was uploaded with translate=true; indexed beside the improved one)")]
    = "improved",
) -> Response:
    doc = owned(db, user, document_id)
    if doc.kind != "audio":
        raise HTTPException(status.HTTP_409_CONFLICT, "a text document has parsed content, not a transcript")
    live = work_dir(settings, doc.id) / LIVE_TRANSCRIPT  # never written for a redacted document
    if version == "translation" and not doc.translate:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this recording was not uploaded with translate=true "
                            "(upload it again with translate=true to add its translation)")
    if version == "live":
        path = live
    else:
        which = "improved" if version == ORIGINAL else version
        path = _derived(doc, settings, f"transcript.{which}.json", ORIGINAL if version == ORIGINAL else "current")
        if not path.exists() and version in ("raw", "improved") and live.exists():
            path, version = live, "live"
    if not path.exists():
        raise HTTPException(status.HTTP_409_CONFLICT, f"no {version} transcript yet: the job has not got that far")
    data = json.loads(path.read_text(encoding="utf-8"))
    if format == "json":
        return JSONResponse({"document_id": doc.id, "version": version, **data})
    parsed = Transcript.from_dict(data)
    if format == "txt":
        body = data.get("llm_text") or to_txt(parsed)
    else:
        body = to_srt(parsed) if format == "srt" else to_vtt(parsed)
    return PlainTextResponse(body, media_type=f"{TRANSCRIPT_TYPES[format]}; charset=utf-8")


@router.get("/{document_id}/file", response_class=FileResponse, responses={
    200: {"description": "the uploaded bytes, with the document's MIME type",
          "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
    **errors.documented(404)})
def original_file(document_id: IdPath, db: SessionDep, user: CurrentUser, settings: SettingsDep) -> FileResponse:
    """The uploaded bytes as they came (lets the dashboard play a recording at a cited second). A redacted
    document's upload says everything the redaction took out: it is served only where its owner keeps the
    original."""
    doc = owned(db, user, document_id)
    if doc.redact and not doc.keep_original:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the upload of a redacted document is not served: it holds "
                            "the personal data the redaction took out (PUT /v1/settings keep_original=true keeps "
                            "it for later uploads)")
    return FileResponse(storage.blob_path(settings.files_dir, doc.sha256), media_type=doc.mime_type,
                        filename=doc.filename)
