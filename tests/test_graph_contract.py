"""One contract suite for every GraphStore backend.

LadybugDB always runs (tmp_path). Neo4j runs when INGESTFLOW_NEO4J_URI is set (user/password from
INGESTFLOW_NEO4J_USER / INGESTFLOW_NEO4J_PASSWORD); every test there uses owners and document ids
with a per-test random prefix and deletes those nodes afterwards, so reruns on a real server are clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingestflow.errors import PermanentError, TransientError
from ingestflow.stores.graph.base import ChunkFacts, EntityMention, GraphCounts, GraphStore, entity_id

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Ctx:
    store: GraphStore
    prefix: str

    @property
    def alice(self) -> str:
        return f"{self.prefix}-owner-a"

    @property
    def bob(self) -> str:
        return f"{self.prefix}-owner-b"

    def doc(self, name: str) -> str:
        return f"{self.prefix}-{name}"


def _neo4j_cleanup(prefix: str) -> None:
    from neo4j import GraphDatabase

    auth = (os.environ.get("INGESTFLOW_NEO4J_USER", "neo4j"), os.environ.get("INGESTFLOW_NEO4J_PASSWORD", "neo4j"))
    with GraphDatabase.driver(os.environ["INGESTFLOW_NEO4J_URI"], auth=auth) as driver:
        driver.execute_query("MATCH (n) WHERE n.owner STARTS WITH $p DETACH DELETE n", p=prefix)


@pytest.fixture(params=["ladybug", "neo4j"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ctx]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    store: GraphStore
    if request.param == "ladybug":
        from ingestflow.stores.graph.ladybug_store import LadybugGraphStore

        store = LadybugGraphStore(tmp_path / "graph" / "kb.lbug")
    else:
        uri = os.environ.get("INGESTFLOW_NEO4J_URI")
        if not uri:
            pytest.skip("neo4j contract tests need INGESTFLOW_NEO4J_URI (no Neo4j server can be installed here)")
        from ingestflow.stores.graph.neo4j_store import Neo4jGraphStore

        store = Neo4jGraphStore(
            uri,
            os.environ.get("INGESTFLOW_NEO4J_USER", "neo4j"),
            os.environ.get("INGESTFLOW_NEO4J_PASSWORD", "neo4j"),
        )
    try:
        yield Ctx(store, prefix)
    finally:
        store.close()
        if request.param == "neo4j":
            _neo4j_cleanup(prefix)


def M(name: str, label: str, count: int = 1) -> EntityMention:  # noqa: N802 - reads like the dataclass
    return EntityMention(name, label, count)


def report_chunks(doc: str) -> list[ChunkFacts]:
    """A paged document: Ada+Acme twice, Ada+London once, Babbage alone."""
    return [
        ChunkFacts(
            f"{doc}:0",
            0,
            "Ada Lovelace joined Acme.",
            page=1,
            entities=[M("Ada Lovelace", "PERSON"), M("Acme", "ORG", 2)],
        ),
        ChunkFacts(
            f"{doc}:1",
            1,
            "Acme hired ada  lovelace in London.",
            page=2,
            entities=[M("ada  lovelace", "PERSON"), M("Acme", "ORG"), M("London", "GPE")],
        ),
        ChunkFacts(f"{doc}:2", 2, "Charles Babbage wrote back.", page=3, entities=[M("Charles Babbage", "PERSON")]),
    ]


def eid(owner: str, label: str, name: str) -> str:
    return entity_id(owner, label, name)


# Ada/Acme/London/Babbage; mentions: (0,Ada)(0,Acme)(1,Ada)(1,Acme)(1,London)(2,Babbage);
# pairs: Ada-Acme (chunks 0,1), Ada-London, Acme-London.
REPORT_COUNTS = GraphCounts(documents=1, chunks=3, entities=4, mentions=6, related=3)


def test_write_document_counts(ctx: Ctx) -> None:
    counts = ctx.store.write_document(ctx.alice, ctx.doc("report"), "Report", report_chunks(ctx.doc("report")))
    assert counts == REPORT_COUNTS
    assert ctx.store.counts(ctx.alice) == REPORT_COUNTS
    found = {e.name: e for e in ctx.store.find_entities(ctx.alice, None)}
    assert set(found) == {"Ada Lovelace", "Acme", "London", "Charles Babbage"}
    assert found["Acme"].mentions == 3  # mention counts are summed: 2 + 1
    assert found["Acme"].id == eid(ctx.alice, "ORG", "acme")
    assert [e.name for e in ctx.store.find_entities(ctx.alice, None, limit=1)] == ["Acme"]
    assert [e.name for e in ctx.store.find_entities(ctx.alice, "LOVE")] == ["Ada Lovelace"]


def test_writing_twice_is_idempotent(ctx: Ctx) -> None:
    doc = ctx.doc("report")
    first = ctx.store.write_document(ctx.alice, doc, "Report", report_chunks(doc))
    ada = ctx.store.get_entity(ctx.alice, eid(ctx.alice, "PERSON", "Ada Lovelace"))
    second = ctx.store.write_document(ctx.alice, doc, "Report", report_chunks(doc))
    assert first == second == REPORT_COUNTS
    assert ctx.store.get_entity(ctx.alice, eid(ctx.alice, "PERSON", "Ada Lovelace")) == ada


def test_rewrite_with_fewer_chunks_removes_stale_facts(ctx: Ctx) -> None:
    doc = ctx.doc("report")
    ctx.store.write_document(ctx.alice, doc, "Report", report_chunks(doc))
    counts = ctx.store.write_document(ctx.alice, doc, "Report v2", report_chunks(doc)[:1])
    assert counts == GraphCounts(documents=1, chunks=1, entities=2, mentions=2, related=1)
    # London and Babbage were named only by the dropped chunks: gone, not orphaned.
    assert ctx.store.get_entity(ctx.alice, eid(ctx.alice, "GPE", "London")) is None
    assert ctx.store.get_entity(ctx.alice, eid(ctx.alice, "PERSON", "Charles Babbage")) is None
    ada = ctx.store.get_entity(ctx.alice, eid(ctx.alice, "PERSON", "Ada Lovelace"))
    assert ada is not None
    assert [m.chunk_id for m in ada.mentions] == [f"{doc}:0"]
    assert [(r.name, r.weight) for r in ada.related] == [("Acme", 1)]


def test_related_weights_are_summed_across_documents(ctx: Ctx) -> None:
    ctx.store.write_document(ctx.alice, ctx.doc("report"), "Report", report_chunks(ctx.doc("report")))
    memo = ctx.doc("memo")
    ctx.store.write_document(
        ctx.alice,
        memo,
        "Memo",
        [ChunkFacts(f"{memo}:0", 0, "Acme and Ada.", page=1, entities=[M("Acme", "ORG"), M("Ada Lovelace", "PERSON")])],
    )
    ada = ctx.store.get_entity(ctx.alice, eid(ctx.alice, "PERSON", "Ada Lovelace"))
    acme = ctx.store.get_entity(ctx.alice, eid(ctx.alice, "ORG", "Acme"))
    assert ada is not None and acme is not None
    # 2 chunks in the report + 1 in the memo; seen from either end of the stored (directed) edge.
    assert {r.name: r.weight for r in ada.related} == {"Acme": 3, "London": 1}
    assert {r.name: r.weight for r in acme.related} == {"Ada Lovelace": 3, "London": 1}
    assert ada.related[0].name == "Acme"  # heaviest first
    assert ctx.store.counts(ctx.alice).related == 4  # one edge per pair per document


def test_owners_are_isolated(ctx: Ctx) -> None:
    ctx.store.write_document(ctx.alice, ctx.doc("a"), "A", report_chunks(ctx.doc("a")))
    ctx.store.write_document(ctx.bob, ctx.doc("b"), "B", report_chunks(ctx.doc("b"))[:1])
    alice_ids = {e.id for e in ctx.store.find_entities(ctx.alice, None)}
    bob_ids = {e.id for e in ctx.store.find_entities(ctx.bob, None)}
    assert len(alice_ids) == 4 and len(bob_ids) == 2
    assert not alice_ids & bob_ids
    assert ctx.store.get_entity(ctx.bob, eid(ctx.alice, "ORG", "Acme")) is None
    bob_acme = ctx.store.get_entity(ctx.bob, eid(ctx.bob, "ORG", "Acme"))
    assert bob_acme is not None
    assert {m.document_id for m in bob_acme.mentions} == {ctx.doc("b")}
    assert [r.name for r in bob_acme.related] == ["Ada Lovelace"]
    assert ctx.store.counts(ctx.alice) == REPORT_COUNTS
    assert ctx.store.counts(ctx.bob) == GraphCounts(documents=1, chunks=1, entities=2, mentions=2, related=1)
    with pytest.raises(PermanentError):  # document ids are global: another owner cannot take one over
        ctx.store.write_document(ctx.bob, ctx.doc("a"), "hijack", [])
    with pytest.raises(PermanentError):
        ctx.store.delete_document(ctx.bob, ctx.doc("a"))
    assert ctx.store.counts(ctx.alice) == REPORT_COUNTS


def test_delete_document_keeps_shared_entities(ctx: Ctx) -> None:
    report, memo = ctx.doc("report"), ctx.doc("memo")
    ctx.store.write_document(ctx.alice, report, "Report", report_chunks(report))
    ctx.store.write_document(
        ctx.alice,
        memo,
        "Memo",
        [ChunkFacts(f"{memo}:0", 0, "Acme and Ada.", page=1, entities=[M("Acme", "ORG"), M("Ada Lovelace", "PERSON")])],
    )
    ctx.store.delete_document(ctx.alice, report)
    assert ctx.store.counts(ctx.alice) == GraphCounts(documents=1, chunks=1, entities=2, mentions=2, related=1)
    assert {e.name for e in ctx.store.find_entities(ctx.alice, None)} == {"Ada Lovelace", "Acme"}
    ada = ctx.store.get_entity(ctx.alice, eid(ctx.alice, "PERSON", "Ada Lovelace"))
    assert ada is not None
    assert {m.document_id for m in ada.mentions} == {memo}
    assert [(r.name, r.weight) for r in ada.related] == [("Acme", 1)]
    ctx.store.delete_document(ctx.alice, memo)
    assert ctx.store.counts(ctx.alice) == GraphCounts(0, 0, 0, 0, 0)
    ctx.store.delete_document(ctx.alice, memo)  # deleting what is gone is a no-op, so retries are safe


def test_mentions_carry_chunk_provenance(ctx: Ctx) -> None:
    report, talk = ctx.doc("report"), ctx.doc("talk")
    ctx.store.write_document(ctx.alice, report, "Report", report_chunks(report))
    ctx.store.write_document(
        ctx.alice,
        talk,
        "Talk",
        [
            ChunkFacts(f"{talk}:0", 0, "intro", start_s=0, end_s=12.5, entities=[M("Acme", "ORG")]),
            ChunkFacts(f"{talk}:1", 1, "more", start_s=12.5, end_s=30.0, entities=[M("ACME", "ORG", 4)]),
        ],
    )
    acme = ctx.store.get_entity(ctx.alice, eid(ctx.alice, "ORG", "Acme"))
    assert acme is not None and acme.name == "Acme" and acme.label == "ORG"
    by_chunk = {m.chunk_id: m for m in acme.mentions}
    assert set(by_chunk) == {f"{report}:0", f"{report}:1", f"{talk}:0", f"{talk}:1"}
    paged = by_chunk[f"{report}:1"]
    assert (paged.document_id, paged.chunk_index, paged.page, paged.start_s, paged.end_s) == (report, 1, 2, None, None)
    assert by_chunk[f"{report}:0"].count == 2
    timed = by_chunk[f"{talk}:1"]
    assert (timed.document_id, timed.chunk_index, timed.page) == (talk, 1, None)
    assert (timed.start_s, timed.end_s, timed.count) == (12.5, 30.0, 4)
    assert by_chunk[f"{talk}:0"].start_s == 0.0


def test_chunk_ids_cannot_move_between_documents(ctx: Ctx) -> None:
    report = ctx.doc("report")
    ctx.store.write_document(ctx.alice, report, "Report", report_chunks(report))
    with pytest.raises(PermanentError):  # a colliding chunk id would splice two documents together
        ctx.store.write_document(ctx.alice, ctx.doc("copy"), "Copy", report_chunks(report)[:1])
    assert ctx.store.counts(ctx.alice) == REPORT_COUNTS
    with pytest.raises(ValueError):
        ctx.store.write_document(ctx.alice, ctx.doc("dup"), "Dup", report_chunks(report)[:1] * 2)


def test_document_without_entities(ctx: Ctx) -> None:
    doc = ctx.doc("blank")
    counts = ctx.store.write_document(ctx.alice, doc, "Blank", [ChunkFacts(f"{doc}:0", 0, "nothing here")])
    assert counts == GraphCounts(documents=1, chunks=1, entities=0, mentions=0, related=0)
    assert ctx.store.write_document(ctx.alice, doc, "Blank", []) == GraphCounts(1, 0, 0, 0, 0)


# ---- LadybugDB only: process locking, rollback, read-only opens ------------------------------------


def _in_child(code: str) -> str:
    """Run code in a fresh interpreter; return its last stdout line (a real second process holds its own lock)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


_CHILD_OPEN = """
    from pathlib import Path
    from ingestflow.errors import TransientError
    from ingestflow.stores.graph.ladybug_store import LadybugGraphStore
    try:
        store = LadybugGraphStore(Path({path!r}), read_only={read_only})
    except TransientError as exc:
        print("TransientError", exc.message.replace("\\n", " "))
    else:
        print("opened", store.counts({owner!r}).chunks)
        store.close()
"""


def test_ladybug_second_writer_process_gets_transient_error(tmp_path: Path) -> None:
    from ingestflow.stores.graph.ladybug_store import LadybugGraphStore

    path = tmp_path / "kb.lbug"
    with LadybugGraphStore(path) as store:
        store.write_document("o", "d", "D", report_chunks("d"))
        out = _in_child(_CHILD_OPEN.format(path=str(path), read_only=False, owner="o"))
        assert out.startswith("TransientError") and "locked" in out
        # A reader beside the writer works and sees what was committed before it opened.
        assert _in_child(_CHILD_OPEN.format(path=str(path), read_only=True, owner="o")) == "opened 3"
        store.write_document("o", "d", "D", report_chunks("d")[:2])
        assert _in_child(_CHILD_OPEN.format(path=str(path), read_only=True, owner="o")) == "opened 2"
    # close() released the lock.
    assert _in_child(_CHILD_OPEN.format(path=str(path), read_only=False, owner="o")) == "opened 2"


def test_ladybug_stores_in_one_process_share_the_database(tmp_path: Path) -> None:
    from ingestflow.stores.graph.ladybug_store import LadybugGraphStore

    path = tmp_path / "kb.lbug"
    first, second = LadybugGraphStore(path), LadybugGraphStore(path)
    first.write_document("o", "d1", "D", report_chunks("d1"))
    second.write_document("o", "d2", "D", report_chunks("d2"))
    first.close()
    assert second.counts("o").documents == 2  # closing one store must not close the shared database
    second.close()
    second.close()  # idempotent
    with pytest.raises(RuntimeError):
        second.counts("o")


def test_ladybug_failed_write_keeps_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingestflow.stores.graph import ladybug_cypher, ladybug_store

    with ladybug_store.LadybugGraphStore(tmp_path / "kb.lbug") as store:
        store.write_document("o", "d", "D", report_chunks("d"))
        before = store.get_entity("o", eid("o", "PERSON", "Ada Lovelace"))
        real_run = store._run

        def failing_run(query: str, params: dict[str, object] | None = None) -> list[list[object]]:
            if query == ladybug_cypher.CREATE_MENTIONS:  # after chunks were deleted and re-created
                raise TransientError("simulated crash mid-write")
            return real_run(query, params)

        monkeypatch.setattr(store, "_run", failing_run)
        with pytest.raises(TransientError):
            store.write_document("o", "d", "D", report_chunks("d")[:1])
        monkeypatch.undo()
        assert store.counts("o") == REPORT_COUNTS
        assert store.get_entity("o", eid("o", "PERSON", "Ada Lovelace")) == before


def test_ladybug_read_only(tmp_path: Path) -> None:
    from ingestflow.stores.graph.ladybug_store import LadybugGraphStore

    missing = tmp_path / "none" / "kb.lbug"
    with LadybugGraphStore(missing, read_only=True) as reader:
        assert reader.counts("o") == GraphCounts(0, 0, 0, 0, 0)  # no graph yet is not an error
    assert not missing.exists()  # and a reader never creates one
    path = tmp_path / "kb.lbug"
    with LadybugGraphStore(path) as writer:
        writer.write_document("o", "d", "D", report_chunks("d"))
    with LadybugGraphStore(path, read_only=True) as reader:
        assert reader.counts("o") == REPORT_COUNTS
        with pytest.raises(PermanentError):
            reader.write_document("o", "d", "D", [])


def test_ladybug_threads_in_one_process_serialise_writes(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ingestflow.stores.graph.ladybug_store import LadybugGraphStore

    path = tmp_path / "kb.lbug"

    def write(n: int) -> None:
        # LadybugDB fails (not waits) on a second concurrent write transaction; the shared lock must prevent it.
        with LadybugGraphStore(path) as store:
            for i in range(3):
                store.write_document("o", f"d{n}-{i}", "D", report_chunks(f"d{n}-{i}"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    with LadybugGraphStore(path, read_only=True) as reader:
        counts = reader.counts("o")
    assert (counts.documents, counts.chunks, counts.entities, counts.related) == (12, 36, 4, 36)


def test_open_graph_store_follows_settings(tmp_path: Path) -> None:
    from ingestflow.settings import Settings
    from ingestflow.stores.graph import open_graph_store
    from ingestflow.stores.graph.ladybug_store import LadybugGraphStore

    settings = Settings(data_dir=tmp_path, graph_backend="ladybug")
    store = open_graph_store(settings)
    try:
        assert isinstance(store, LadybugGraphStore) and store.backend == "ladybug"
        assert settings.graph_path.exists()
        store.write_document("o", "d", "D", report_chunks("d"))
    finally:
        store.close()
    reader = open_graph_store(settings, read_only=True)
    try:
        assert reader.counts("o") == REPORT_COUNTS
        with pytest.raises(PermanentError):
            reader.delete_document("o", "d")
    finally:
        reader.close()
    with pytest.raises(ValueError, match="NEO4J_URI"):
        open_graph_store(Settings(data_dir=tmp_path, graph_backend="neo4j", neo4j_uri=None))
