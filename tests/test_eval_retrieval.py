"""Retrieval quality on the fixtures: strict recall@1, recall@5 and MRR of vector-only, lexical-only, hybrid and
(when a cross-encoder is configured) hybrid+rerank search, on the development and the held-out parts of the QA
set (tests/qa_set.json), ingested through the API on the real stack by a fresh user; and of graph expansion.

The held-out part was written before the hybrid ranking existed and was never tuned on. The floors sit a
little below the figures measured when they were set (see the printout), so a change that makes retrieval
worse fails here, while run-to-run noise (none is expected: every model is deterministic) does not.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Api, _key

pytestmark = pytest.mark.slow

QA_SET = Path(__file__).with_name("qa_set.json")
GENERATED = Path(__file__).with_name("data") / "eval"  # made by scripts/make_eval_fixtures.py
PARTS = ("dev", "held_out")
DEPTH = 10  # hits asked for; MRR counts a first correct hit down to here
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
FLOORS: dict[tuple[str, str, str], float] = {
    ("vector", "dev", "r@1"): 0.83, ("vector", "dev", "r@5"): 0.92,
    ("vector", "held_out", "r@1"): 0.61, ("vector", "held_out", "r@5"): 0.90,
    ("lexical", "dev", "r@1"): 0.77, ("lexical", "dev", "r@5"): 0.88,
    ("lexical", "held_out", "r@1"): 0.82, ("lexical", "held_out", "r@5"): 0.94,
    ("hybrid", "dev", "r@1"): 0.90, ("hybrid", "dev", "r@5"): 0.96,
    ("hybrid", "held_out", "r@1"): 0.83, ("hybrid", "held_out", "r@5"): 0.96,
    ("hybrid+graph", "dev", "r@1"): 0.89, ("hybrid+graph", "held_out", "r@1"): 0.82,
}


def kind_of(item: dict[str, Any], qa: dict[str, Any]) -> str:
    """recording, pdf or other: the kinds the measurement is reported by."""
    if item["document"] in qa["audio"]:
        return "recording"
    return "pdf" if item["document"].endswith(".pdf") else "other"


@dataclass(frozen=True)
class Outcome:
    question: str
    rank: int | None  # 1-based rank of the first correct hit within DEPTH, or None
    first: str = ""  # what ranked first instead, when the answer did not


def _where(hit: dict[str, Any]) -> str:
    if hit.get("start_s") is not None:
        return f"{hit['start_s']:.0f}-{hit['end_s']:.0f}s"
    return f"p{hit.get('page')}" if hit.get("page") is not None else ""


def describe(hit: dict[str, Any]) -> str:
    """A competing hit in one line: its document, page or seconds, and the start of its text."""
    return f"{hit.get('title', '?')} {_where(hit)}: {' '.join(hit['text'].split())[:70]!r}"


def load_qa() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(QA_SET.read_text())
    return data


def fixture_path(name: str, kind: str) -> Path:
    """A file of the QA set: ../shared/fixtures/<kind>/<name> where it is there, else the generated one in
    tests/data/eval/. kind is "documents" or "audio", the list of qa_set.json that names it."""
    shared = FIXTURES / kind / name
    return shared if shared.exists() else GENERATED / name


def _folded(text: str) -> str:
    return " ".join(text.lower().replace("*", "").split())


def is_answer(hit: dict[str, Any], item: dict[str, Any], doc_ids: dict[str, str]) -> bool:
    """In the expected document; on the expected page (any of them, when several) or overlapping the seconds;
    and holding the expected phrase, where one is given."""
    if hit["document_id"] != doc_ids[item["document"]]:
        return False
    if "page" in item:
        first = hit.get("page")
        last = hit.get("page_end") or first
        pages = item["page"] if isinstance(item["page"], list) else [item["page"]]
        if first is None or not any(first <= p <= last for p in pages):
            return False
    if "seconds" in item:
        start, end = item["seconds"]
        if not (hit.get("start_s") is not None and hit["start_s"] < end and (hit.get("end_s") or 0) > start):
            return False
    return "contains" not in item or _folded(item["contains"]) in _folded(hit["text"])


def evaluate(api: Api, doc_ids: dict[str, str], questions: list[dict[str, Any]], **params: Any) -> list[Outcome]:
    outcomes = []
    for item in questions:
        r = api.get("/v1/search", q=item["question"], k=DEPTH, **params)
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        rank = next((i for i, hit in enumerate(hits, 1) if is_answer(hit, item, doc_ids)), None)
        outcomes.append(Outcome(item["id"], rank, describe(hits[0]) if hits and rank != 1 else ""))
    return outcomes


def recall(outcomes: list[Outcome], at: int) -> tuple[int, float]:
    found = sum(1 for o in outcomes if o.rank is not None and o.rank <= at)
    return found, found / len(outcomes)


def mrr(outcomes: list[Outcome]) -> float:
    return sum(1 / o.rank for o in outcomes if o.rank is not None) / len(outcomes)


def part(questions: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [q for q in questions if q.get("split", "dev") == name]


@pytest.fixture(scope="module")
def corpus(stack: Any) -> tuple[Api, dict[str, str]]:
    """The fixtures uploaded by a user of their own, so other modules' uploads cannot change the ranking."""
    qa = load_qa()
    api = Api(f"http://127.0.0.1:{stack.settings.api_port}", _key(stack.settings, f"eval-{uuid.uuid4().hex[:8]}"))
    paths = [fixture_path(n, "documents") for n in qa["documents"]] + [fixture_path(n, "audio") for n in qa["audio"]]
    uploads = {}
    for path in paths:
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
            (n1, r1), (n5, r5) = recall(outcomes, 1), recall(outcomes, 5)
            measured |= {(mode, name, "r@1"): r1, (mode, name, "r@5"): r5, (mode, name, "mrr"): mrr(outcomes)}
            print(f"  {name:<8} {mode:<13} recall@1 {r1:.3f} ({n1}/{len(items)})  recall@5 {r5:.3f} ({n5}/"
                  f"{len(items)})  MRR {mrr(outcomes):.3f}")
            for kind in ("recording", "pdf", "other"):
                of_kind = [o for o, q in zip(outcomes, items, strict=True) if kind_of(q, qa) == kind]
                if of_kind:
                    print(f"           {kind:<10} ({len(of_kind):>3})  recall@1 {recall(of_kind, 1)[1]:.3f}  "
                          f"recall@5 {recall(of_kind, 5)[1]:.3f}  MRR {mrr(of_kind):.3f}")
            missed = [o for o in outcomes if o.rank != 1]
            print(f"           not first: {' '.join(f'{o.question}:{o.rank}' for o in missed) or '-'}")
            for o in missed:  # what beat the answer: the cause to fix, per mode
                print(f"             {o.question:<28} first: {o.first}")
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
