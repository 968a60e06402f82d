"""BM25's statistics kept by triggers (migration 0009) and the candidate budget of lexical search, on a real
PostgreSQL server (fast tier): the kept counts always equal a count made from the rows, whatever wrote or
removed them (the embed stage's replace, a document's cascade, an owner's deletion, concurrent writers), and a
query reads at most the budget's candidates."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import delete, text

from ingestflow.db import ChunkText, Document, User, session_scope
from ingestflow.stores import lexical

COUNTED = """SELECT c.owner_id, count(*) AS n, sum(c.token_count) AS total_len FROM chunks c GROUP BY c.owner_id"""
COUNTED_TERMS = """SELECT c.owner_id, u.lexeme, count(*) AS df FROM chunks c
                   CROSS JOIN LATERAL unnest(c.tsv) AS u(lexeme, positions, weights) GROUP BY 1, 2"""


def _owner(url: str) -> str:
    with session_scope(url) as db:
        user = User(name=f"lex-{uuid.uuid4().hex[:8]}")
        db.add(user)
        db.flush()
        return user.id


def _document(url: str, owner: str) -> str:
    with session_scope(url) as db:
        doc = Document(owner_id=owner, sha256=uuid.uuid4().hex, filename="n.md", title="n", kind="text", format="md",
                       mime_type="text/markdown", size_bytes=1)
        db.add(doc)
        db.flush()
        return doc.id


def _write(url: str, owner: str, doc: str, texts: Sequence[str]) -> None:
    """As the embed stage writes a document's chunk texts: the whole set replaced."""
    with session_scope(url) as db:
        lexical.replace_chunks(db, [doc], [
            ChunkText(id=f"{doc}:{i}", owner_id=owner, document_id=doc, chunk_index=i, kind="text", collection=None,
                      text=t, meta={"headings": "Notes"}) for i, t in enumerate(texts)])


def _kept_equals_counted(url: str) -> None:
    with session_scope(url, read_only=True) as db:
        kept = {(r.owner_id, r.n, r.total_len) for r in db.execute(
            text("SELECT owner_id, n, total_len FROM lexical_stats WHERE tbl = 'chunks'"))}
        counted = {(r.owner_id, r.n, r.total_len) for r in db.execute(text(COUNTED))}
        assert kept == counted
        # A lexeme gone from an owner's rows may keep a zero count (never a negative one) until the owner has none.
        assert db.execute(text("SELECT count(*) FROM lexical_terms WHERE df < 0")).scalar() == 0
        kept_terms = {tuple(r) for r in db.execute(
            text("SELECT owner_id, lexeme, df FROM lexical_terms WHERE tbl = 'chunks' AND df > 0"))}
        assert kept_terms == {tuple(r) for r in db.execute(text(COUNTED_TERMS))}


def test_the_kept_statistics_follow_every_write_and_removal(pg_url: str) -> None:
    alice, bob = _owner(pg_url), _owner(pg_url)
    a1, a2, b1 = _document(pg_url, alice), _document(pg_url, alice), _document(pg_url, bob)
    _write(pg_url, alice, a1, ["The invoice INV-2024-0042 is due in March.", "Maria flies to Rotterdam."])
    _write(pg_url, alice, a2, ["Rotterdam trains are booked by the travel desk."])
    _write(pg_url, bob, b1, ["Bob's invoice is paid."])
    _kept_equals_counted(pg_url)
    _write(pg_url, alice, a1, ["A shorter invoice note."])  # a rerun replaces the document's chunks
    _kept_equals_counted(pg_url)
    with session_scope(pg_url) as db:  # a document deleted: its chunks go by the cascade
        db.execute(delete(Document).where(Document.id == a2))
    _kept_equals_counted(pg_url)
    with session_scope(pg_url) as db:  # an owner deleted: nothing of theirs is left, not even zero counts
        db.execute(delete(User).where(User.id == bob))
    _kept_equals_counted(pg_url)
    with session_scope(pg_url, read_only=True) as db:
        assert db.execute(text("SELECT count(*) FROM lexical_terms WHERE owner_id = :o"), {"o": bob}).scalar() == 0
        assert db.execute(text("SELECT count(*) FROM lexical_stats WHERE owner_id = :o"), {"o": bob}).scalar() == 0


def test_concurrent_writers_of_one_owner_take_turns_and_keep_the_counts(pg_url: str) -> None:
    """Four threads re-embed overlapping documents of one owner at once (as reruns and backfill do): with the
    lexeme rows locked per statement in whatever order, two such transactions deadlocked; the owner's lock makes
    them take turns."""
    owner = _owner(pg_url)
    docs = [_document(pg_url, owner) for _ in range(3)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for round_ in range(8):
                for doc in (docs[n % 3], docs[(n + 1) % 3]):
                    _write(pg_url, owner, doc, [f"invoice {round_} of writer {n} for Rotterdam and Maria",
                                                f"travel desk note {n} {round_} about trains"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    _kept_equals_counted(pg_url)


def test_a_query_reads_at_most_the_budget_and_rare_terms_first(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = _owner(pg_url)
    doc = _document(pg_url, owner)
    common = [f"meeting notes about the budget, item {i}" for i in range(12)]
    _write(pg_url, owner, doc, [*common, "meeting notes about the budget and the Zanzibar ferry"])
    monkeypatch.setattr(lexical, "CANDIDATE_BUDGET", 5)
    rare = lexical.search(pg_url, "chunks", owner, "budget meeting Zanzibar", 10)
    # "budget" and "meeting" are in 13 chunks each, past the budget: only the rare term's chunk is a candidate,
    # and it holds every term.
    assert [h.id for h in rare] == [f"{doc}:12"] and rare[0].all_terms
    only_common = lexical.search(pg_url, "chunks", owner, "budget meeting", 10)
    assert len(only_common) == 5 and all(h.all_terms for h in only_common)
    monkeypatch.setattr(lexical, "CANDIDATE_BUDGET", 1000)  # within the budget the list is exact: all 13 chunks
    assert len(lexical.search(pg_url, "chunks", owner, "budget meeting", 20)) == 13
