"""Retrieval quality in process, for tuning the ranking on the development part of tests/qa_set.json: recall@1,
recall@5 and MRR per mode, part and kind, and what ranked first for every miss - the measure of
tests/test_eval_retrieval.py (which asks through the API and holds the floors), taken in seconds.

The QA corpus is ingested once through the real stack; with `--data DIR` the stack's data is kept there and a
later run starts the stack on it and asks at once (ingesting takes minutes, asking all questions in all modes
seconds). The questions go to the search's own `retrieve` in this process, so a ranking constant can be changed
for a run: `--set retrieval.CANDIDATES=50` (a module of ingestflow.answering, or a full module path), or tried at
several values in one run: `--set ranking.EXACT_BONUS=0,0.1,0.2` (repeatable: every combination). Tune on
`--part dev`; the held-out part measures what was chosen, and is never tuned on.

    .venv/bin/python bench/eval_retrieval.py [--data DIR] [--part dev|held_out|all] [--modes hybrid,vector,lexical]
        [--set MODULE.NAME=V1[,V2...] ...] [--quiet]
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any, cast

import httpx
from common import ROOT, bench_stack, wait_job

sys.path.insert(0, str(ROOT))
from tests.qa import DEPTH, PARTS, corpus_paths, load_qa, outcome, part, report  # noqa: E402

MANIFEST = "eval-corpus.json"


def _module_attr(dotted: str) -> tuple[Any, str]:
    """("retrieval.CANDIDATES") -> (the module ingestflow.answering.retrieval, "CANDIDATES")."""
    module, _, name = dotted.rpartition(".")
    path = module if "." in module else f"ingestflow.answering.{module}"
    mod = importlib.import_module(path)
    if not hasattr(mod, name):
        raise SystemExit(f"{path} has no {name}")
    return mod, name


def setting(text: str) -> tuple[str, list[Any]]:
    """"MODULE.NAME=V1,V2" -> ("MODULE.NAME", [V1, V2]), each value a Python literal."""
    name, _, values = text.partition("=")
    return name, [ast.literal_eval(v) for v in values.split(",")]


def ingest(settings: Any, base: str, data: Path | None) -> tuple[str, dict[str, str]]:
    """The QA corpus uploaded by an owner of its own, or found where an earlier run with this --data left it."""
    from ingestflow.auth import create_key
    from ingestflow.db import session_scope

    qa = load_qa()
    manifest = data / MANIFEST if data is not None else None
    with session_scope(settings.sqlalchemy_url) as db:
        user, key = create_key(db, "eval")  # the same owner again on a kept stack
        owner = user.id
    if manifest is not None and manifest.exists():
        doc_ids: dict[str, str] = json.loads(manifest.read_text())
        if set(doc_ids) == {p.name for p in corpus_paths(qa)}:
            return owner, doc_ids
    t0 = time.perf_counter()
    uploads = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        for path in corpus_paths(qa):
            with path.open("rb") as fh:
                r = http.post("/v1/documents", files={"file": (path.name, fh)})
            if r.status_code not in (200, 202):
                raise SystemExit(f"{path.name}: {r.status_code} {r.text}")
            uploads[path.name] = r.json()
    for name, up in uploads.items():
        job = wait_job(base, key, up["job_id"])
        if job["status"] != "completed":
            raise SystemExit(f"{name}: {job['status']} {job.get('error')}")
    print(f"ingested {len(uploads)} files in {time.perf_counter() - t0:.0f} s")
    doc_ids = {name: up["document_id"] for name, up in uploads.items()}
    if manifest is not None:
        manifest.write_text(json.dumps(doc_ids))
    return owner, doc_ids


def measure(settings: Any, owner: str, doc_ids: dict[str, str], parts: list[str], modes: list[str],
            misses: bool) -> dict[tuple[str, str, str], float]:
    from ingestflow.answering.retrieval import Mode, retrieve
    from ingestflow.answering.search import Hit

    qa = load_qa()
    measured: dict[tuple[str, str, str], float] = {}
    for name in parts:
        items = part(qa["questions"], name)
        for mode in modes:
            outcomes = []
            for item in items:
                found = retrieve(settings, owner, item["question"], DEPTH, mode=cast(Mode, mode), rerank=False)
                outcomes.append(outcome(item, [Hit.of(h).model_dump() for h in found.hits], doc_ids))
            measured |= {(mode, name, m): v for m, v in report(name, mode, items, outcomes, qa, misses).items()}
    return measured


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="keep the stack's data (and the ingested corpus) here, reuse it")
    ap.add_argument("--part", choices=[*PARTS, "all"], default="dev")
    ap.add_argument("--modes", default="hybrid,vector,lexical")
    ap.add_argument("--set", action="append", default=[], metavar="MODULE.NAME=V1[,V2...]",
                    help="a ranking constant's value, or values tried in turn (repeatable: every combination)")
    ap.add_argument("--quiet", action="store_true", help="figures only, not the misses")
    args = ap.parse_args()
    parts = list(PARTS) if args.part == "all" else [args.part]
    modes = args.modes.split(",")
    with bench_stack(data=args.data) as (settings, base, _key, _stack):
        owner, doc_ids = ingest(settings, base, args.data)
        variants: list[list[tuple[str, Any]]] = [[]]  # every combination of the values given
        for text in args.set:
            name, values = setting(text)
            variants = [[*v, (name, value)] for v in variants for value in values]
        for variant in variants:
            for name, value in variant:
                mod, attr = _module_attr(name)
                setattr(mod, attr, value)
            if variant:
                print(" ".join(f"{n}={v!r}" for n, v in variant))
            measure(settings, owner, doc_ids, parts, modes, misses=not args.quiet)


if __name__ == "__main__":
    main()
