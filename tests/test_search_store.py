"""Per-owner vector collections, lexical search, hybrid ranking, purge, backfill and the vector migration, on a
real Chroma server and a real PostgreSQL server (fast tier), with the packaged embedding model."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ingestflow.answering.ranking import combine, fuse, min_max, scaled_to_best
from ingestflow.answering.search import SearchFilters, embed_texts
from ingestflow.db import ChunkText, Document, User, session_scope, utcnow
from ingestflow.errors import NotFound
from ingestflow.settings import Settings
from ingestflow.stores import lexical
from ingestflow.stores.vectors import DocumentVectors, VectorStore, chunk_id, collection_name, where_clause

# A neighbour paragraph that sounds like every question about invoices, and the table row that answers one.
TEXTS = {
    "billing": [
        "Invoices are paid within thirty days of receipt. Late invoices are reminded twice before collection.",
        "| invoice | amount | due |\n| INV-2024-0042 | 1,250 EUR | 14 March 2025 |\n"
        "| INV-2024-0043 | 80 EUR | 2 April |",
        "The finance department checks every invoice against its purchase order before payment.",
    ],
    "travel": [
        "Maria Lopez flies to Rotterdam on Monday to meet the Northwind Systems team.",
        "Train tickets are booked through the travel desk, never privately.",
    ],
}


@pytest.fixture
def settings(pg_url: str, chroma_server: int, tmp_path: Path) -> Settings:
    # A collection name of its own per test: the Chroma server is shared by the session.
    return Settings(database_url=pg_url, chroma_port=chroma_server, data_dir=tmp_path,
                    chroma_collection=f"t{uuid.uuid4().hex[:10]}")


def _owner(settings: Settings, name: str) -> str:
    with session_scope(settings.sqlalchemy_url) as db:
        user = User(name=f"{name}-{uuid.uuid4().hex[:6]}")
        db.add(user)
        db.flush()
        return user.id


def _document(settings: Settings, owner_id: str, title: str, texts: list[str], collection: str | None = None,
              kind: str = "text", completed: bool = True) -> str:
    """A document as a completed run leaves it (or, not `completed`, as the embed stage does): a row, its vectors
    in the owner's collection, its chunk texts."""
    with session_scope(settings.sqlalchemy_url) as db:
        doc = Document(owner_id=owner_id, sha256=uuid.uuid4().hex, filename=title, title=title, kind=kind,
                       format="md", mime_type="text/markdown", size_bytes=1, collection=collection,
                       vector_indexed=True, chunk_count=len(texts), indexed_at=utcnow() if completed else None)
        db.add(doc)
        db.flush()
        doc_id = doc.id
    ids = [chunk_id(doc_id, i) for i in range(len(texts))]
    metas: list[dict[str, Any]] = [
        {k: v for k, v in {"owner_id": owner_id, "document_id": doc_id, "chunk_index": i, "kind": kind,
                           "title": title, "collection": collection, "page_start": 1}.items() if v is not None}
        for i in range(len(texts))]
    VectorStore(settings.chroma_host, settings.chroma_port, settings.chroma_collection).replace_documents(
        [DocumentVectors(owner_id, doc_id, ids, embed_texts(settings, texts), texts, metas)])
    with session_scope(settings.sqlalchemy_url) as db:
        lexical.replace_chunks(db, [doc_id], [
            ChunkText(id=cid, owner_id=owner_id, document_id=doc_id, chunk_index=i, kind=kind, collection=collection,
                      text=t, meta=m) for i, (cid, t, m) in enumerate(zip(ids, texts, metas, strict=True))])
    return doc_id


def test_where_clause_and_fusion() -> None:
    assert where_clause({"kind": None}) is None
    assert where_clause({"kind": "text"}) == {"kind": "text"}
    assert where_clause({"kind": "text", "document_id": ["a", "b"]}) == {
        "$and": [{"kind": "text"}, {"document_id": {"$in": ["a", "b"]}}]}
    fused = fuse([(["a", "b", "c"], 1.0), (["b", "d"], 1.0)])
    assert max(fused, key=fused.__getitem__) == "b"  # second and first beats first alone
    assert fused["a"] > fused["c"] and fused["d"] == pytest.approx(1 / 62)
    # Scores, not ranks: a clear lead in meaning outweighs a near tie in words ...
    combined = combine({"a": 0.56, "b": 0.41, "c": 0.20}, {"a": 0.95, "b": 1.0}, exact=set())
    assert max(combined, key=combined.__getitem__) == "a"
    assert combined["c"] == 0.0 and combined["b"] == pytest.approx(0.6 * 0.21 / 0.36 + 0.4)
    # ... and holding the query's exact terms (a figure, a code) is worth more than either near tie.
    with_code = combine({"a": 0.56, "b": 0.54, "c": 0.20}, {"a": 1.0, "b": 0.9}, exact={"b"})
    assert with_code["b"] > with_code["a"]
    assert min_max({"x": 0.3, "y": 0.3}) == {"x": 0.0, "y": 0.0} and scaled_to_best({"x": 0.0}) == {"x": 0.0}
    with pytest.raises(ValueError):
        collection_name("chunks", "no spaces allowed")


def test_each_owner_has_a_collection_and_sees_only_it(settings: Settings) -> None:
    from ingestflow.stores.vectors import open_vector_store

    alice, bob, carol = (_owner(settings, n) for n in ("alice", "bob", "carol"))
    a_doc = _document(settings, alice, "billing.md", TEXTS["billing"])
    b_doc = _document(settings, bob, "billing.md", TEXTS["billing"])
    store = open_vector_store(settings)
    assert sorted(store.owners()) == sorted([alice, bob])
    assert store.count(alice) == 3 and store.count(alice, a_doc) == 3 and store.count(alice, b_doc) == 0
    vector = embed_texts(settings, ["when is the invoice due"])[0]
    assert {h.document_id for h in store.query(alice, vector, 50)} == {a_doc}
    assert {h.document_id for h in store.query(bob, vector, 50)} == {b_doc}
    # Known ids' vectors scored as the query scores them, from the owner's collection only.
    by_query = {h.chunk_id: h.score for h in store.query(alice, vector, 50)}
    cosines = store.cosines(alice, [*by_query, chunk_id(b_doc, 0)], vector)
    assert cosines.keys() == by_query.keys() and all(abs(cosines[c] - by_query[c]) < 1e-4 for c in cosines)
    assert store.query(carol, vector, 10) == [] and store.count(carol) == 0  # nothing written: no collection
    assert carol not in store.owners()
    # Lexical search is scoped to the owner as well.
    assert {h.document_id for h in lexical.search(settings.sqlalchemy_url, "chunks", bob, "invoice", 50)} == {b_doc}


def test_an_owner_with_few_chunks_leaves_no_write_log_behind(settings: Settings, chroma_data: Path) -> None:
    """Chroma keeps each write in its log until the collection's index is persisted (ingestflow/stores/vectors.py
    COLLECTION_METADATA): with its default threshold an owner of fewer than 1,000 chunks never lets go of any."""
    import sqlite3

    from ingestflow.stores.vectors import open_vector_store

    owner = _owner(settings, "log")
    store = open_vector_store(settings)
    vectors = embed_texts(settings, [f"note {i} about the quarterly budget review" for i in range(20)])
    for d in range(15):  # 300 chunks, 20 at a time, as an owner's documents arrive
        doc = f"doc-{d}"
        store.replace_documents([DocumentVectors(owner, doc, [chunk_id(doc, i) for i in range(20)], vectors,
                                                 [f"note {i}" for i in range(20)], [{"document_id": doc}] * 20)])
    assert store.count(owner) == 300
    collection = store._collection(owner, create=False)
    db = sqlite3.connect(f"file:{chroma_data / 'chroma.sqlite3'}?mode=ro", uri=True)
    try:
        logged = db.execute("SELECT count(*) FROM embeddings_queue WHERE topic LIKE ?",
                            (f"%{collection.id}",)).fetchone()[0]
    finally:
        db.close()
    assert logged < 100, f"{logged} of 300 writes still in Chroma's log"


def test_bm25_weighs_rare_terms_and_knows_exact_matches(settings: Settings) -> None:
    owner = _owner(settings, "lex")
    billing = _document(settings, owner, "billing.md", TEXTS["billing"], collection="finance")
    travel = _document(settings, owner, "travel.md", TEXTS["travel"])
    hits = lexical.search(settings.sqlalchemy_url, "chunks", owner, "INV-2024-0042", 10)
    assert hits[0].id == chunk_id(billing, 1) and hits[0].all_terms and hits[0].exact
    assert lexical.exact_terms("Is invoice INV-2024-0042 late, asks Maria?") == "INV-2024-0042 Maria"
    assert lexical.exact_terms("What is a male duck called?") is None
    # "invoice" is in every billing chunk, "Rotterdam" in one: the rare word decides.
    hits = lexical.search(settings.sqlalchemy_url, "chunks", owner, "invoice Rotterdam", 10)
    assert hits[0].id == chunk_id(travel, 0) and not hits[0].all_terms
    assert lexical.search(settings.sqlalchemy_url, "chunks", owner, "invoice", 10,
                          {"collection": "finance", "document_id": [billing]})
    assert lexical.search(settings.sqlalchemy_url, "chunks", owner, "invoice", 10, {"document_id": travel}) == []
    assert lexical.search(settings.sqlalchemy_url, "chunks", owner, "the of and", 10) == []  # stop words only
    assert lexical.search(settings.sqlalchemy_url, "chunks", owner, "back\\slash 'quote' a|b & !c", 10) == []


def test_hybrid_puts_the_exact_term_first(settings: Settings) -> None:
    from ingestflow.answering.retrieval import retrieve

    owner = _owner(settings, "hybrid")
    billing = _document(settings, owner, "billing.md", TEXTS["billing"])
    _document(settings, owner, "travel.md", TEXTS["travel"], kind="audio")
    query = "is invoice INV-2024-0043 late"
    vector_first = retrieve(settings, owner, query, 3, mode="vector").hits[0]
    hybrid = retrieve(settings, owner, query, 3).hits
    assert vector_first.chunk_id != chunk_id(billing, 1)  # the embedding alone prefers a neighbour ...
    assert hybrid[0].chunk_id == chunk_id(billing, 1)  # ... the fused ranking puts the row first
    assert 0 < hybrid[0].vector_score < 1 and hybrid[0].score > hybrid[1].score
    assert retrieve(settings, owner, query, 3, mode="lexical").hits[0].chunk_id == chunk_id(billing, 1)
    # Filters hold for both lists.
    assert {h.metadata["kind"] for h in retrieve(settings, owner, query, 5, SearchFilters(kind="audio")).hits} == {
        "audio"}
    assert retrieve(settings, owner, query, 5, SearchFilters(document_id="0" * 32)).hits == []


def test_a_document_is_served_only_once_a_run_has_completed_and_not_after_one_failed(settings: Settings) -> None:
    """Issue 28: the embed stage writes vectors and chunk texts before the later stages run; a document whose
    run is in flight for the first time, or failed after that, is in no search hit (nor chat source) until a run
    completes."""
    from ingestflow.answering.retrieval import retrieve

    owner = _owner(settings, "served")
    done = _document(settings, owner, "billing.md", TEXTS["billing"])
    half = _document(settings, owner, "travel.md", TEXTS["travel"], completed=False)
    query = "Maria Lopez flies to Rotterdam"

    def found(filters: SearchFilters | None = None) -> set[str]:
        return {h.document_id for mode in ("hybrid", "vector", "lexical")
                for h in retrieve(settings, owner, query, 5, filters, mode=mode).hits}

    assert found() == {done}
    assert found(SearchFilters(document_id=half)) == set()
    with session_scope(settings.sqlalchemy_url) as db:
        doc = db.get(Document, half)
        assert doc is not None
        doc.indexed_at = utcnow()  # a later run completed
    assert found() == {done, half}
    with session_scope(settings.sqlalchemy_url) as db:
        doc = db.get(Document, done)
        assert doc is not None
        doc.last_error = "extract-entities failed: ..."  # its last run failed
    assert found() == {half}


def test_rerank_reorders_the_top_with_the_model(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rerank code path, with a fake cross-encoder: no package ships a real one (answering/ranking.py)."""
    from ingestflow.answering import retrieval

    class FakeCrossEncoder:
        def predict(self, pairs: list[tuple[str, str]], **kwargs: Any) -> list[float]:
            return [1.0 if "travel desk" in text else 0.0 for _, text in pairs]

    owner = _owner(settings, "rerank")
    travel = _document(settings, owner, "travel.md", TEXTS["travel"])
    _document(settings, owner, "billing.md", TEXTS["billing"])
    monkeypatch.setattr(retrieval, "reranker_for", lambda path: FakeCrossEncoder() if path else None)
    with_model = settings.model_copy(update={"rerank_model": Path("/fake/cross-encoder")})
    assert retrieval.retrieve(with_model, owner, "invoice due", 3).hits[0].chunk_id == chunk_id(travel, 1)
    assert retrieval.retrieve(with_model, owner, "invoice due", 3, rerank=False).hits[0].chunk_id != chunk_id(travel, 1)


def test_purge_removes_vectors_texts_and_the_last_collection(settings: Settings) -> None:
    from ingestflow.jobs.purge import purge_document
    from ingestflow.stores.vectors import open_vector_store

    owner = _owner(settings, "purge")
    first = _document(settings, owner, "billing.md", TEXTS["billing"])
    second = _document(settings, owner, "travel.md", TEXTS["travel"])
    store = open_vector_store(settings)
    purge_document(settings, owner, first)
    assert store.count(owner, first) == 0 and store.count(owner) == 2 and owner in store.owners()
    assert not lexical.search(settings.sqlalchemy_url, "chunks", owner, "invoice", 10)
    with session_scope(settings.sqlalchemy_url) as db:
        db.delete(db.get(Document, first))  # as the DELETE route does after purging
    purge_document(settings, owner, second)
    assert owner not in store.owners()
    # A later upload of the same owner gets a collection again at its first write.
    third = _document(settings, owner, "travel.md", TEXTS["travel"])
    assert store.count(owner, third) == 2


def test_delete_is_one_use_case_that_leaves_nothing_and_cancels_first(settings: Settings,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """ingestflow.jobs.removal.delete, what DELETE /v1/documents/{id} runs: the active job is cancelled and
    committed before the stores are purged; then rows, vectors, lexical rows, the file and derived files go."""
    from ingestflow.db import Job, JobStatus
    from ingestflow.jobs import removal
    from ingestflow.refs import work_dir
    from ingestflow.stores import storage
    from ingestflow.stores.vectors import open_vector_store

    owner, stranger = _owner(settings, "remove"), _owner(settings, "stranger")
    doc_id = _document(settings, owner, "billing.md", TEXTS["billing"])
    with session_scope(settings.sqlalchemy_url) as db:
        doc = db.get(Document, doc_id)
        assert doc is not None
        blob = storage.blob_path(settings.files_dir, doc.sha256)
        job = Job.for_document(doc)
        job.status = JobStatus.running
        db.add(job)
        db.flush()
        job_id = job.id
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"billing")
    (work_dir(settings, doc_id) / "chunks.json").parent.mkdir(parents=True, exist_ok=True)
    (work_dir(settings, doc_id) / "chunks.json").write_text("[]")
    seen_cancelled: list[str] = []
    real_purge = removal.purge_document

    def purge(settings_: Settings, owner_id: str, document_id: str) -> Any:
        with session_scope(settings.sqlalchemy_url) as other:  # what a running stage reads meanwhile
            found = other.get(Job, job_id)
            seen_cancelled.append(found.status if found else "gone")
        return real_purge(settings_, owner_id, document_id)

    monkeypatch.setattr(removal, "purge_document", purge)
    with session_scope(settings.sqlalchemy_url) as db, pytest.raises(NotFound):
        removal.delete(db, settings, stranger, doc_id)  # a foreign document is a missing one
    with session_scope(settings.sqlalchemy_url) as db:
        removal.delete(db, settings, owner, doc_id)
    assert seen_cancelled == [JobStatus.cancelled], seen_cancelled
    with session_scope(settings.sqlalchemy_url) as db:
        assert db.get(Document, doc_id) is None and db.get(Job, job_id) is None
        assert db.scalar(select(func.count()).select_from(ChunkText).where(ChunkText.document_id == doc_id)) == 0
    assert open_vector_store(settings).count(owner, doc_id) == 0
    assert not blob.exists() and not work_dir(settings, doc_id).exists()


def test_backfill_finds_documents_search_cannot_see(settings: Settings) -> None:
    from ingestflow.jobs.backfill import unsearchable
    from ingestflow.stores.vectors import open_vector_store

    owner = _owner(settings, "backfill")
    whole = _document(settings, owner, "billing.md", TEXTS["billing"])
    lost = _document(settings, owner, "travel.md", TEXTS["travel"])
    open_vector_store(settings).delete_documents(owner, [lost])
    untexted = _document(settings, owner, "more.md", ["Another note about the travel desk."])
    lexical.delete_document(settings.sqlalchemy_url, untexted)
    with session_scope(settings.sqlalchemy_url) as db:
        found = unsearchable(db, settings)
    assert found.get(lost) == "vectors not in the owner's collection"
    assert found.get(untexted) == "chunk texts not in the lexical index"
    assert whole not in found


def test_migrate_vectors_moves_a_single_collection_store_losing_nothing(settings: Settings) -> None:
    import chromadb

    from ingestflow.stores.vector_migration import migrate_vectors
    from ingestflow.stores.vectors import TURNS, open_vector_store

    alice, bob = _owner(settings, "m-alice"), _owner(settings, "m-bob")
    client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port)
    legacy = client.get_or_create_collection(settings.chroma_collection, embedding_function=None,
                                             metadata={"hnsw:space": "cosine"})
    turns = client.get_or_create_collection(TURNS, embedding_function=None, metadata={"hnsw:space": "cosine"})
    turns.delete(where={"owner_id": {"$in": [alice, bob]}})
    expected: dict[str, dict[str, Any]] = {}
    for owner, name in ((alice, "billing"), (bob, "travel")):
        with session_scope(settings.sqlalchemy_url) as db:
            doc = Document(owner_id=owner, sha256=uuid.uuid4().hex, filename=name, title=name, kind="text",
                           format="md", mime_type="text/markdown", size_bytes=1, vector_indexed=True,
                           chunk_count=len(TEXTS[name]))
            db.add(doc)
            db.flush()
            doc_id = doc.id
        texts = TEXTS[name]
        ids = [chunk_id(doc_id, i) for i in range(len(texts))]
        metas = [{"owner_id": owner, "document_id": doc_id, "chunk_index": i, "kind": "text", "title": name}
                 for i in range(len(texts))]
        legacy.add(ids=ids, embeddings=embed_texts(settings, texts), documents=texts, metadatas=metas)
        for cid, text, meta in zip(ids, texts, metas, strict=True):
            expected[cid] = {"owner": owner, "text": text, "meta": meta}
    turn_id = uuid.uuid4().hex
    turns.add(ids=[turn_id], embeddings=embed_texts(settings, ["When is the invoice due?"]),
              documents=["When is the invoice due?"],
              metadatas=[{"owner_id": alice, "conversation_id": "c1", "role": "user", "index": 0}])
    before = legacy.get(include=["embeddings"])

    reports = migrate_vectors(settings)
    assert [(r.copied, r.unplaced, r.removed) for r in reports] == [(5, 0, True), (1, 0, True)]
    assert reports[0].chunk_rows == 5 and reports[0].owners == {alice, bob}
    assert settings.chroma_collection not in [c.name for c in client.list_collections()]
    store = open_vector_store(settings)
    for owner in (alice, bob):
        got = client.get_collection(collection_name(settings.chroma_collection, owner)).get(
            include=["embeddings", "documents", "metadatas"])
        for cid, emb, text, meta in zip(got["ids"], got["embeddings"], got["documents"], got["metadatas"],
                                        strict=True):
            assert expected[cid]["owner"] == owner and text == expected[cid]["text"] and meta == expected[cid]["meta"]
            assert list(emb) == pytest.approx(list(before["embeddings"][before["ids"].index(cid)]))
    assert store.count(alice) == 3 and store.count(bob) == 2
    assert open_vector_store(settings, TURNS).count(alice) == 1
    assert lexical.search(settings.sqlalchemy_url, "chunks", alice, "INV-2024-0042", 3)[0].id in expected
    # A second run finds nothing left to move; a vector without an owner keeps the old collection.
    assert [r.copied for r in migrate_vectors(settings)][0] == 0
    orphan = client.get_or_create_collection(settings.chroma_collection, embedding_function=None)
    orphan.add(ids=["x:00000"], embeddings=embed_texts(settings, ["lost"]), documents=["lost"],
               metadatas=[{"document_id": "x"}])
    again = migrate_vectors(settings)[0]
    assert again.unplaced == 1 and not again.removed
    assert settings.chroma_collection in [c.name for c in client.list_collections()]


def test_the_llm_reads_a_recording_window_with_its_neighbours_and_cites_the_window(settings: Settings) -> None:
    """Windows are a few sentences (cut for precise citations): the prompt gives the LLM the windows either side
    of a cited one to read, while the source keeps its own text and seconds; a document's pages are not widened,
    and another owner's windows are never read."""
    from ingestflow.answering.chat import answer_prompt, widened
    from ingestflow.answering.search import Source

    owner, other = _owner(settings, "memo"), _owner(settings, "someone-else")
    windows = ["Remind me to call the dentist on Monday.", "The bike shop called back about the rear wheel.",
               "It will cost about forty euros and is ready on Saturday."]
    memo = _document(settings, owner, "voice memo", windows, kind="audio")
    report = _document(settings, owner, "report", TEXTS["billing"])
    theirs = _document(settings, other, "their memo", ["A secret of someone else."], kind="audio")
    cited = Source(n=1, document_id=memo, chunk_id=chunk_id(memo, 1), text=windows[1], score=0.1, vector_score=0.5,
                   title="voice memo", kind="audio", start_s=12.5, end_s=24.0)
    page = Source(n=2, document_id=report, chunk_id=chunk_id(report, 1), text=TEXTS["billing"][1], score=0.05,
                  vector_score=0.4, title="report", kind="text", page=1)
    foreign = Source(n=3, document_id=theirs, chunk_id=chunk_id(theirs, 1), text="", score=0.01, vector_score=0.1,
                     title="their memo", kind="audio", start_s=0.0, end_s=5.0)
    reading = widened(settings, owner, [cited, page, foreign])
    assert reading[1] == " ".join(windows)  # the window before, the window, the window after
    assert 2 not in reading and "secret" not in reading.get(3, "")
    prompt = answer_prompt("How much is the bike repair?", [cited, page], [], reading)
    assert "[1] voice memo (12-24 s):\nRemind me to call the dentist" in prompt and "forty euros" in prompt
    assert cited.text == windows[1] and (cited.start_s, cited.end_s) == (12.5, 24.0)
