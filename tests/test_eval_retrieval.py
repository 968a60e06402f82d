"""Retrieval quality on the fixtures: strict recall@1, recall@5 and MRR of vector-only, lexical-only, hybrid and
(when a cross-encoder is configured) hybrid+rerank search, on the development and the held-out parts of the QA
set (tests/qa_set.json), ingested through the API on the real stack by a fresh user; and of graph expansion.

The held-out part was written before the hybrid ranking existed and was never tuned on. The floors sit a
little below the figures measured when they were set (see the printout), so a change that makes retrieval
worse fails here, while the spread between machines does not: every model is deterministic on one machine, but
Whisper's transcripts are not the same on every CPU (FLOORS says by how much).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Api, _key
from tests.qa import DEPTH, PARTS, Outcome, corpus_paths, load_qa, outcome, part, report

pytestmark = pytest.mark.slow

# (mode, part, measure) -> floor, about two questions below what was measured when they were set (2026-12-05,
# sentence windows for recordings, hybrid scored by a convex combination of scaled cosine and BM25 chosen on the
# development part, table rows of born-digital PDFs kept as rows; issue 22 added 43 held-out ho2- questions over
# recordings and PDF tables, written before any ranking change, and 18 dev dv- recording questions to tune on):
#                    dev (54)  r@1 / r@5 / MRR         held-out (100)  r@1 / r@5 / MRR
#   vector           0.870 / 0.963 / 0.910             0.630 / 0.920 / 0.746
#   lexical          0.815 / 0.926 / 0.864             0.840 / 0.960 / 0.889
#   hybrid           0.944 / 1.000 / 0.965             0.850 / 0.980 / 0.908
#   hybrid+graph     0.926 / 1.000 / 0.955             0.840 / 0.980 / 0.903
# hybrid by kind, r@1 / r@5: dev recordings (22) 0.864 / 1.000, PDFs (20) 1.000 / 1.000, other (12) 1.000 / 1.000;
# held-out recordings (24) 0.708 / 0.958, PDFs (45) 0.889 / 1.000, other (31) 0.903 / 0.968.
# With rank fusion (before): dev hybrid 0.870 / 0.963, held-out 0.840 / 0.970.
# The same tree on an AMD EPYC with AVX2 and no AVX-512 (2026-12-07), r@1 only: dev hybrid 0.907, hybrid+graph 0.889,
# two questions below the figures above; held-out hybrid 0.860, hybrid+graph 0.850. The difference is in the
# transcripts: Whisper tiny.en gave the words saved beside the recordings (tests/data/eval/*.transcript.txt) for 1
# of the 7 files there, with int8 (the default) and with float32 alike, WER against the scripts 0.108 and 0.104
# (float32 1.46x the time). A dev recording question is one window's cut away from rank 1, so the floors keep two
# questions of room (hybrid+graph dev had one: 0.89 of 50/54; now 0.88).
FLOORS: dict[tuple[str, str, str], float] = {
    ("vector", "dev", "r@1"): 0.83, ("vector", "dev", "r@5"): 0.92,
    ("vector", "held_out", "r@1"): 0.61, ("vector", "held_out", "r@5"): 0.90,
    ("lexical", "dev", "r@1"): 0.77, ("lexical", "dev", "r@5"): 0.88,
    ("lexical", "held_out", "r@1"): 0.82, ("lexical", "held_out", "r@5"): 0.94,
    ("hybrid", "dev", "r@1"): 0.90, ("hybrid", "dev", "r@5"): 0.96,
    ("hybrid", "held_out", "r@1"): 0.83, ("hybrid", "held_out", "r@5"): 0.96,
    ("hybrid+graph", "dev", "r@1"): 0.88, ("hybrid+graph", "held_out", "r@1"): 0.82,
}


def evaluate(api: Api, doc_ids: dict[str, str], questions: list[dict[str, Any]], **params: Any) -> list[Outcome]:
    outcomes = []
    for item in questions:
        r = api.get("/v1/search", q=item["question"], k=DEPTH, **params)
        assert r.status_code == 200, r.text
        outcomes.append(outcome(item, r.json()["hits"], doc_ids))
    return outcomes


@pytest.fixture(scope="module")
def corpus(stack: Any) -> tuple[Api, dict[str, str]]:
    """The fixtures uploaded by a user of their own, so other modules' uploads cannot change the ranking."""
    qa = load_qa()
    api = Api(f"http://127.0.0.1:{stack.settings.api_port}", _key(stack.settings, f"eval-{uuid.uuid4().hex[:8]}"))
    uploads = {}
    for path in corpus_paths(qa):
        r = api.upload(path)
        assert r.status_code == 202, r.text
        uploads[path.name] = r.json()
    for name, up in uploads.items():
        job = api.wait_job(up["job_id"])
        assert job["status"] == "completed", (name, job)
    return api, {name: up["document_id"] for name, up in uploads.items()}


def test_recall_by_mode_on_both_parts(corpus: tuple[Api, dict[str, str]], stack: Any) -> None:
    api, doc_ids = corpus
    qa = load_qa()
    questions = qa["questions"]
    modes: dict[str, dict[str, Any]] = {
        "vector": {"mode": "vector"}, "lexical": {"mode": "lexical"}, "hybrid": {"mode": "hybrid", "rerank": False},
        "hybrid+graph": {"mode": "hybrid", "rerank": False, "expand": "graph"},
    }
    if stack.settings.rerank_model is not None:
        modes["hybrid+rerank"] = {"mode": "hybrid", "rerank": True}
    print(f"\nretrieval over {len(questions)} questions (tests/qa_set.json), strict, k={DEPTH}")
    if "hybrid+rerank" not in modes:
        print("  hybrid+rerank: not measured, no cross-encoder configured (none ships in a package)")
    measured: dict[tuple[str, str, str], float] = {}
    for name in PARTS:
        items = part(questions, name)
        for mode, params in modes.items():
            outcomes = evaluate(api, doc_ids, items, **params)
            measured |= {(mode, name, m): v for m, v in report(name, mode, items, outcomes, qa).items()}
    for key, floor in FLOORS.items():
        assert measured[key] >= floor, f"{key} fell to {measured[key]:.3f} (floor {floor})"
    # The fusion never loses to one of its own inputs (issue 22).
    for name in PARTS:
        for at in ("r@1", "r@5"):
            parts = max(measured[("vector", name, at)], measured[("lexical", name, at)])
            assert measured[("hybrid", name, at)] >= parts, f"hybrid {name} {at} below one of its lists ({parts:.3f})"


def test_graph_expansion_reports_its_entities(corpus: tuple[Api, dict[str, str]]) -> None:
    """A query naming an entity of the corpus finds it, and hits reached through it say so."""
    api, doc_ids = corpus
    body = api.get("/v1/search", q="What did Christopher Latham Sholes patent?", k=5, expand="graph").json()
    names = {e["name"] for e in body["query_entities"] if e["via"] == "query"}
    assert "Christopher Latham Sholes" in names, body["query_entities"]
    top = body["hits"][0]
    assert top["document_id"] == doc_ids["multi_page.pdf"] and top["page"] == 1, top
    assert top["expanded_from"] and "Christopher Latham Sholes" in top["expanded_from"], top
    # Plain search says nothing about the graph, and scores the same chunk lower: the graph's list lifted it.
    plain = api.get("/v1/search", q="What did Christopher Latham Sholes patent?", k=5).json()
    assert plain["query_entities"] == [] and all(h["expanded_from"] is None for h in plain["hits"])
    assert top["score"] > next(h["score"] for h in plain["hits"] if h["chunk_id"] == top["chunk_id"])
