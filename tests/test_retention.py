"""Issue 26, parts 1 and 2: retention rules set and read through the API, applied with the clock moved forward
(the same cascade as DELETE /v1/documents/{id}: file, rows, vectors, lexical rows, graph facts, derived files),
and the audit of every removal. The real app served by uvicorn on a real PostgreSQL and a real Chroma server, the
embedded graph store; no Prefect (the pass is called as the `retention` flow's task calls it). Fast tier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from ingestflow.settings import Settings
from tests.conftest import owner_api, served_app

PORT = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 48


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Settings]:
    with served_app(request, PORT) as settings:
        yield settings


def _client(settings: Settings, name: str) -> tuple[httpx.Client, str]:
    api = owner_api(settings, name, PORT)
    return api.http, api.user_id


def _indexed(settings: Settings, http: httpx.Client, owner_id: str, name: str, days_old: int,
             collection: str | None = None) -> str:
    """An upload as a completed run leaves it, `days_old` days ago: its row and file, vectors, lexical rows,
    graph facts and derived files."""
    from ingestflow.db import ChunkText, Document, JobStatus, session_scope, utcnow
    from ingestflow.refs import work_dir
    from ingestflow.stores import lexical
    from ingestflow.stores.graph import writing
    from ingestflow.stores.graph.base import ChunkFacts, EntityMention
    from ingestflow.stores.vectors import DocumentVectors, chunk_id, open_vector_store

    text = f"{name}: Ada Lovelace wrote to Charles Babbage about the analytical engine."
    r = http.post("/v1/documents", files={"file": (f"{name}.md", f"# {name}\n\n{text}\n".encode())},
                  data={"collection": collection} if collection else {})
    assert r.status_code == 202, r.text
    doc_id = r.json()["document_id"]
    ids, meta = [chunk_id(doc_id, 0)], {"owner_id": owner_id, "document_id": doc_id, "chunk_index": 0, "kind": "text",
                                        "title": name}
    from ingestflow.answering.search import embed_texts

    open_vector_store(settings).replace_documents(
        [DocumentVectors(owner_id, doc_id, ids, embed_texts(settings, [text]), [text], [meta])])
    with session_scope(settings.sqlalchemy_url) as db:
        lexical.replace_chunks(db, [doc_id], [ChunkText(id=ids[0], owner_id=owner_id, document_id=doc_id,
                                                        chunk_index=0, kind="text", text=text, meta=meta)])
        doc = db.get(Document, doc_id)
        assert doc is not None
        doc.created_at = utcnow() - timedelta(days=days_old)
        doc.indexed_at = utcnow()
        for job in doc_jobs(db, doc_id):
            job.status = JobStatus.completed
    with writing(settings) as graph:
        graph.write_document(owner_id, doc_id, name, [ChunkFacts(ids[0], 0, text, page=1, entities=(
            EntityMention("Ada Lovelace", "PERSON"), EntityMention(f"Engine {name}", "ORG")))])
    (work_dir(settings, doc_id) / "chunks.json").parent.mkdir(parents=True, exist_ok=True)
    (work_dir(settings, doc_id) / "chunks.json").write_text("[]")
    return doc_id


def doc_jobs(db: Any, doc_id: str) -> list[Any]:
    from sqlalchemy import select

    from ingestflow.db import Job

    return list(db.scalars(select(Job).where(Job.document_id == doc_id)))


def _left_of(settings: Settings, owner_id: str, doc_id: str) -> dict[str, Any]:
    """What every store holds of the document."""
    from sqlalchemy import func, select

    from ingestflow.db import ChunkText, Document, Job, session_scope
    from ingestflow.refs import work_dir
    from ingestflow.stores import storage
    from ingestflow.stores.graph import open_graph_store
    from ingestflow.stores.vectors import open_vector_store

    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        doc = db.get(Document, doc_id)
        sha = doc.sha256 if doc else None
        def count(table: Any) -> int:
            return int(db.scalar(select(func.count()).select_from(table).where(table.document_id == doc_id)) or 0)

        rows = {"document": doc is not None, "jobs": count(Job), "lexical": count(ChunkText)}
    store = open_graph_store(settings, read_only=True)
    try:
        graph = [m.document_id for e in store.find_entities(owner_id, "Engine", 50)
                 for m in (store.get_entity(owner_id, e.id).mentions if store.get_entity(owner_id, e.id) else [])
                 if m.document_id == doc_id]
    finally:
        store.close()
    return {**rows, "vectors": open_vector_store(settings).count(owner_id, doc_id), "graph": len(graph),
            "file": bool(sha) and storage.blob_path(settings.files_dir, sha).exists(),
            "derived": work_dir(settings, doc_id).exists()}


def test_rules_are_set_and_read_through_the_api_and_checked(served: Settings) -> None:
    http, _ = _client(served, "rules")
    none = {"default": None, "collections": {}}
    assert http.get("/v1/retention").json() == none
    rules = {"default": {"days": 365}, "collections": {"calls": {"days": 30, "action": "keep_redacted"}}}
    r = http.put("/v1/retention", json=rules)
    assert r.status_code == 200, r.text
    assert r.json() == {"default": {"days": 365, "action": "delete"},
                        "collections": {"calls": {"days": 30, "action": "keep_redacted"}}}
    assert http.get("/v1/retention").json() == r.json()
    for bad in ({"default": {"days": 0}}, {"default": {"days": "5"}}, {"default": {"days": 5, "action": "shred"}},
                {"collections": {"": {"days": 5}}}):
        assert http.put("/v1/retention", json=bad).status_code == 422, bad
    other, _ = _client(served, "rules-other")
    assert other.get("/v1/retention").json() == none  # an owner's rules are theirs alone
    assert http.put("/v1/retention", json={}).json() == none  # no rules: kept until deleted


def test_an_expired_document_leaves_nothing_and_one_that_has_not_is_untouched(served: Settings) -> None:
    from ingestflow.db import session_scope
    from ingestflow.jobs import retention

    http, owner = _client(served, "expiry")
    old = _indexed(served, http, owner, "old-note", days_old=20)
    fresh = _indexed(served, http, owner, "fresh-note", days_old=1)
    kept = _indexed(served, http, owner, "archived", days_old=20, collection="archive")
    assert http.put("/v1/retention", json={"default": {"days": 30}, "collections": {"archive": {"days": 3650}}}
                    ).status_code == 200
    before = {d: _left_of(served, owner, d) for d in (old, fresh, kept)}
    assert all(v for v in before[old].values()), before[old]  # the test holds something in every store
    with session_scope(served.sqlalchemy_url, read_only=True) as db:
        assert retention.plan(db, served) == []  # today nothing is due ... ; the clock moved 25 days on:
        due = retention.plan(db, served, now=retention.utcnow() + timedelta(days=15))
    assert [(e.document_id, e.action) for e in due] == [(old, "delete")], due  # the archive keeps its own rule
    assert [e.document_id for e in retention.apply(served, due)] == [old]
    assert _left_of(served, owner, old) == {"document": False, "jobs": 0, "lexical": 0, "vectors": 0, "graph": 0,
                                            "file": False, "derived": False}
    assert _left_of(served, owner, fresh) == before[fresh] and _left_of(served, owner, kept) == before[kept]
    assert http.get(f"/v1/documents/{old}").status_code == 404
    [record] = http.get("/v1/audit", params={"action": "expired"}).json()["items"]
    assert record["document_id"] == old and record["title"] == "old-note.md" and record["actor"].startswith(
        "retention policy ") and record["policy_id"], record
    assert record["removed"] == {"vectors": 1, "lexical_rows": 1, "graph": True, "derived_files": True,
                                 "file": "removed"}, record
    assert retention.apply(served, due) == []  # a second pass finds it gone: nothing twice


def test_every_removal_is_audited_and_the_audit_is_the_owners_alone(served: Settings) -> None:
    from ingestflow.db import session_scope
    from ingestflow.jobs import retention

    http, owner = _client(served, "audited")
    first = _indexed(served, http, owner, "first", days_old=1)
    second = _indexed(served, http, owner, "second", days_old=100)
    assert http.delete(f"/v1/documents/{first}").status_code == 204
    assert http.put("/v1/retention", json={"default": {"days": 90}}).status_code == 200
    with session_scope(served.sqlalchemy_url, read_only=True) as db:
        due = retention.plan(db, served)
    retention.apply(served, due)
    items = http.get("/v1/audit").json()["items"]
    assert [(i["action"], i["document_id"], i["actor"]) for i in items][:2] == [
        ("expired", second, f"retention policy {due[0].policy_id}"), ("deleted", first, "user")], items
    page = http.get("/v1/audit", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and [i["document_id"] for i in page["items"]] == [first]
    assert http.get("/v1/audit", params={"document_id": second}).json()["total"] == 1
    stranger, _ = _client(served, "audited-stranger")
    assert stranger.get("/v1/audit").json()["total"] == 0
    # Retention never removes the audit: another pass with every rule at a day leaves both records.
    assert http.put("/v1/retention", json={"default": {"days": 1}}).status_code == 200
    with session_scope(served.sqlalchemy_url, read_only=True) as db:
        retention.apply(served, retention.plan(db, served, now=retention.utcnow() + timedelta(days=3650)))
    assert http.get("/v1/audit").json()["total"] == 2
