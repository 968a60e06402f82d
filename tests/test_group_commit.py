"""Fast tier, on a real PostgreSQL: uploads that arrive together are written together (api/group_commit.py and
api/intake.py's accept_many): one transaction answers each upload as it would have been answered alone (new,
duplicate, 409, 413, 429), a database error answers every upload of its group and stores none, and the same
bytes raced in by another process make only the loser a duplicate."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from api import group_commit, intake
from api.schemas import UploadAccepted
from ingestflow.auth import Owner, create_key
from ingestflow.db import Document, Job, session_scope
from ingestflow.settings import Settings
from ingestflow.stores import storage


def _owner(url: str, name: str) -> Owner:
    with session_scope(url) as db:
        user, _key = create_key(db, name)
        return Owner(id=user.id, name=user.name)


def _spooled(settings: Settings, owner: Owner, body: bytes, *, redact: bool = False) -> intake.Spooled:
    tmp, sha, size = storage.spool(io.BytesIO(body), settings.files_dir, 10**6)
    return intake.check(settings, owner, tmp, sha, size, filename="note.md", language=None, title=None,
                        collection=None, redact=redact)


def _note(tag: str, size: int = 200) -> bytes:
    return (f"# Note {tag}\n\nAda Lovelace wrote to Charles Babbage about the engine. " * 20).encode()[:size]


def _documents(url: str) -> int:
    with session_scope(url) as db:
        return db.scalar(select(func.count()).select_from(Document)) or 0


def _spools_left(settings: Settings) -> list[Path]:
    return list(settings.files_dir.glob(f"{storage.SPOOL_PREFIX}*"))


def test_a_group_answers_each_upload_as_alone(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=pg_url, data_dir=tmp_path, upload_burst=4, upload_rate_per_s=0.1,
                        storage_quota_bytes=500)
    ada, bob = _owner(pg_url, "ada"), _owner(pg_url, "bob")
    with session_scope(pg_url) as db:
        [stored_before] = intake.accept_many(db, settings, [_spooled(settings, bob, _note("kept"))])
    assert isinstance(stored_before, UploadAccepted) and not stored_before.duplicate
    items = [
        _spooled(settings, ada, _note("a")),                  # new
        _spooled(settings, ada, _note("a")),                  # the same bytes again, in the same group
        _spooled(settings, ada, _note("a"), redact=True),     # the same bytes asking for redaction: 409
        _spooled(settings, ada, _note("b", 400)),             # past ada's quota (200 + 400 > 500): 413
        _spooled(settings, ada, _note("c")),                  # past ada's budget of 4: 429
        _spooled(settings, bob, _note("kept")),               # bob's stored document
        _spooled(settings, bob, _note("d")),                  # new, with a budget and a quota of its own
    ]
    with session_scope(pg_url) as db:
        new, again, conflict, over_quota, over_budget, kept, other = intake.accept_many(db, settings, items)
    assert isinstance(new, UploadAccepted) and not new.duplicate and new.status == "queued"
    assert isinstance(again, UploadAccepted) and again.duplicate
    assert (again.document_id, again.job_id) == (new.document_id, new.job_id)
    assert isinstance(conflict, HTTPException) and conflict.status_code == 409
    assert isinstance(over_quota, HTTPException) and over_quota.status_code == 413
    assert "storage quota exceeded" in over_quota.detail
    assert isinstance(over_budget, HTTPException) and over_budget.status_code == 429
    assert int((over_budget.headers or {})["Retry-After"]) == 10  # one token in 1 / 0.1 s
    assert isinstance(kept, UploadAccepted) and kept.duplicate and kept.document_id == stored_before.document_id
    assert isinstance(other, UploadAccepted) and not other.duplicate
    with session_scope(pg_url) as db:
        jobs = set(db.scalars(select(Job.id)))
    assert jobs == {stored_before.job_id, new.job_id, other.job_id}
    assert _documents(pg_url) == 3 and not _spools_left(settings)
    blobs = {p.name for p in settings.files_dir.glob("??/*")}
    assert blobs == {hashlib.sha256(b).hexdigest() for b in (_note("kept"), _note("a"), _note("d"))}


def test_uploads_arriving_together_share_a_group(pg_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(database_url=pg_url, data_dir=tmp_path)
    owner = _owner(pg_url, "burst")
    groups: list[int] = []
    accept_many = intake.accept_many

    def counted(db: Any, settings: Settings, items: list[intake.Spooled]) -> list[intake.Outcome]:
        groups.append(len(items))
        return accept_many(db, settings, items)

    monkeypatch.setattr(intake, "accept_many", counted)

    async def burst() -> list[UploadAccepted]:
        writer = group_commit.GroupCommit(settings)
        first = asyncio.ensure_future(writer.submit(_spooled(settings, owner, _note("n0"))))
        await asyncio.sleep(0)  # the first upload waits for the writer...
        await asyncio.sleep(0)  # ...which has taken it, alone, to its thread
        rest = [writer.submit(_spooled(settings, owner, _note(f"n{i}"))) for i in range(1, 30)]
        return [await first, *await asyncio.gather(*rest)]

    answers = asyncio.run(burst())
    assert len({a.document_id for a in answers}) == 30 and not any(a.duplicate for a in answers)
    # The first upload is written at once, alone; the 29 that came while it was go together.
    assert groups == [1, 29], groups
    assert _documents(pg_url) == 30 and not _spools_left(settings)


def test_a_database_error_answers_the_whole_group_and_stores_nothing(pg_url: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(database_url=pg_url, data_dir=tmp_path)
    owner = _owner(pg_url, "unlucky")

    def refused_commit(self: Any) -> None:
        raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    async def group() -> list[Any]:
        writer = group_commit.GroupCommit(settings)
        return list(await asyncio.gather(*(writer.submit(_spooled(settings, owner, _note(f"e{i}")))
                                           for i in range(5)), return_exceptions=True))

    from sqlalchemy.orm import Session
    monkeypatch.setattr(Session, "commit", refused_commit)
    answers = asyncio.run(group())
    monkeypatch.undo()
    assert all(isinstance(a, OperationalError) for a in answers), answers
    assert _documents(pg_url) == 0 and not _spools_left(settings)
    # Uploaded again once the database answers, they are stored (their blobs, stored before, are kept as they are).
    assert all(isinstance(a, UploadAccepted) for a in asyncio.run(group()))
    assert _documents(pg_url) == 5


def test_bytes_raced_in_by_another_process_make_only_the_loser_a_duplicate(pg_url: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # No budget: its bucket's row, locked by this group until its commit, would hold the other process here.
    settings = Settings(database_url=pg_url, data_dir=tmp_path, upload_rate_per_s=0)
    owner = _owner(pg_url, "racer")
    raced, own = _note("raced"), _note("own")
    commit_blobs = storage.commit

    def other_process_first(root: Path, spooled: list[tuple[Path, str]]) -> None:
        # Between this group's reads and its commit, another API process stores the same bytes.
        monkeypatch.setattr(storage, "commit", commit_blobs)
        with session_scope(pg_url) as db:
            intake.accept_many(db, settings, [_spooled(settings, owner, raced)])
        commit_blobs(root, spooled)

    monkeypatch.setattr(storage, "commit", other_process_first)
    with session_scope(pg_url) as db:
        lost, won = intake.accept_many(db, settings, [_spooled(settings, owner, raced), _spooled(settings, owner, own)])
    assert isinstance(lost, UploadAccepted) and lost.duplicate
    assert isinstance(won, UploadAccepted) and not won.duplicate
    with session_scope(pg_url) as db:
        winner = db.scalar(select(Document.id).where(Document.sha256 == hashlib.sha256(raced).hexdigest()))
    assert lost.document_id == winner and _documents(pg_url) == 2 and not _spools_left(settings)
