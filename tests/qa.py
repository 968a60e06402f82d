"""The QA set (tests/qa_set.json) and how retrieval is scored on it: strict recall@k and MRR, per part and per kind
of document. Used by tests/test_eval_retrieval.py (through the API, holding the floors) and bench/eval_retrieval.py
(in process, for tuning on the development part). Imports nothing of pytest, so a bench can use it as it is."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
if not FIXTURES.exists():  # CI clones main next to shared/, as does a developer checkout
    FIXTURES = Path(os.environ.get("INGESTFLOW_FIXTURES", "/work/shared/fixtures"))
QA_SET = Path(__file__).with_name("qa_set.json")
GENERATED = Path(__file__).with_name("data") / "eval"  # made by scripts/make_eval_fixtures.py
PARTS = ("dev", "held_out")
KINDS = ("recording", "pdf", "other")
DEPTH = 10  # hits asked for; MRR counts a first correct hit down to here


@dataclass(frozen=True)
class Outcome:
    question: str
    rank: int | None  # 1-based rank of the first correct hit within DEPTH, or None
    first: str = ""  # what ranked first instead, when the answer did not


def load_qa() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(QA_SET.read_text())
    return data


def part(questions: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [q for q in questions if q.get("split", "dev") == name]


def kind_of(item: dict[str, Any], qa: dict[str, Any]) -> str:
    """recording, pdf or other: the kinds the measurement is reported by."""
    if item["document"] in qa["audio"]:
        return "recording"
    return "pdf" if item["document"].endswith(".pdf") else "other"


def fixture_path(name: str, kind: str) -> Path:
    """A file of the QA set: ../shared/fixtures/<kind>/<name> where it is there, else the generated one in
    tests/data/eval/. kind is "documents" or "audio", the list of qa_set.json that names it."""
    shared = FIXTURES / kind / name
    return shared if shared.exists() else GENERATED / name


def corpus_paths(qa: dict[str, Any]) -> list[Path]:
    """Every file the questions are asked over."""
    return [fixture_path(n, "documents") for n in qa["documents"]] + [fixture_path(n, "audio") for n in qa["audio"]]


def _where(hit: dict[str, Any]) -> str:
    if hit.get("start_s") is not None:
        return f"{hit['start_s']:.0f}-{hit['end_s']:.0f}s"
    return f"p{hit.get('page')}" if hit.get("page") is not None else ""


def describe(hit: dict[str, Any]) -> str:
    """A competing hit in one line: its document, page or seconds, and the start of its text."""
    return f"{hit.get('title', '?')} {_where(hit)}: {' '.join(hit['text'].split())[:70]!r}"


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


def outcome(item: dict[str, Any], hits: list[dict[str, Any]], doc_ids: dict[str, str]) -> Outcome:
    rank = next((i for i, hit in enumerate(hits, 1) if is_answer(hit, item, doc_ids)), None)
    return Outcome(item["id"], rank, describe(hits[0]) if hits and rank != 1 else "")


def recall(outcomes: list[Outcome], at: int) -> tuple[int, float]:
    found = sum(1 for o in outcomes if o.rank is not None and o.rank <= at)
    return found, found / len(outcomes)


def mrr(outcomes: list[Outcome]) -> float:
    return sum(1 / o.rank for o in outcomes if o.rank is not None) / len(outcomes)


def report(name: str, mode: str, items: list[dict[str, Any]], outcomes: list[Outcome], qa: dict[str, Any],
           misses: bool = True) -> dict[str, float]:
    """Prints a part's figures for a mode, by kind, and (misses) what ranked first where the answer did not;
    returns recall@1, recall@5 and MRR by "r@1", "r@5", "mrr"."""
    (n1, r1), (n5, r5) = recall(outcomes, 1), recall(outcomes, 5)
    print(f"  {name:<8} {mode:<13} recall@1 {r1:.3f} ({n1}/{len(items)})  recall@5 {r5:.3f} ({n5}/"
          f"{len(items)})  MRR {mrr(outcomes):.3f}")
    for kind in KINDS:
        of_kind = [o for o, q in zip(outcomes, items, strict=True) if kind_of(q, qa) == kind]
        if of_kind:
            print(f"           {kind:<10} ({len(of_kind):>3})  recall@1 {recall(of_kind, 1)[1]:.3f}  "
                  f"recall@5 {recall(of_kind, 5)[1]:.3f}  MRR {mrr(of_kind):.3f}")
    if misses:
        missed = [o for o in outcomes if o.rank != 1]
        print(f"           not first: {' '.join(f'{o.question}:{o.rank}' for o in missed) or '-'}")
        for o in missed:  # what beat the answer: the cause to fix, per mode
            print(f"             {o.question:<28} first: {o.first}")
    return {"r@1": r1, "r@5": r5, "mrr": mrr(outcomes)}
