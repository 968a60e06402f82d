"""Soak: does the Dask worker's memory stay bounded over a long mixed run on the embedded default?

    .venv/bin/python bench/soak_bench.py [--docs 300] [--copies 10] [--recordings 8] [--keep]

Uploads `--docs` documents through the API of a stack of its own: small notes, `--copies` copies of each
fixture document (PDF, scanned PDF, DOCX, PPTX, HTML) and `--recordings` recordings, every copy made distinct
bytes so none is a duplicate. The first 20 include one of every kind, so every model is loaded once they are
done. Printed then and after the last document: the Dask worker's resident memory (what its memory limit
measures) and that of its parse children (which the limit does not see), and the ratio last/first (goal:
within 20%). Sampled every 2 s in between: the peak, and how often the worker process was replaced
(lifetime or memory recycling, ingestflow/shell/dask_recycle.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import threading
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any

import psutil
from common import bench_stack
from ingest_bench import FIXTURES, check_stores, note, outcome, upload_all, wait_all

DOCUMENTS = ["multi_page.pdf", "ocr_test.pdf", "word_sample.docx", "powerpoint_sample.pptx", "wiki_duck.html"]
RECORDINGS = ["jfk.flac", "sample_10s.mp3"]  # formats that ignore bytes after their audio data
FIRST = 20


def distinct(name: str, data: bytes, copy: int) -> bytes:
    """The same content as different bytes, in a way each format ignores."""
    if name.endswith((".docx", ".pptx")):
        buf = io.BytesIO(data)
        with zipfile.ZipFile(buf, "a") as z:
            z.comment = f"soak copy {copy}".encode()
        return buf.getvalue()
    if name.endswith(".html"):
        return data + f"\n<!-- soak copy {copy} -->\n".encode()
    if name.endswith(".pdf"):
        return data + f"\n%soak copy {copy}\n".encode()
    return data + f"soak copy {copy}".encode()  # after the audio frames


def corpus(total: int, copies: int, recordings: int) -> list[tuple[str, bytes]]:
    docs = [(f"{i}-{n}", distinct(n, (FIXTURES / "documents" / n).read_bytes(), i))
            for i in range(copies) for n in DOCUMENTS]
    audio = [(f"{i}-{RECORDINGS[i % 2]}", distinct(RECORDINGS[i % 2], (FIXTURES / "audio" / RECORDINGS[i % 2])
                                                   .read_bytes(), i)) for i in range(recordings)]
    notes = [(f"note-{i}.md", note(i, lines=4 + i % 12)) for i in range(total - len(docs) - len(audio))]
    assert len(notes) >= FIRST, "too few notes for the mix asked for"
    # One of every kind among the first 20, the rest shuffled (the same order every run).
    first = docs[:len(DOCUMENTS)] + audio[:2]
    fill = FIRST - len(first)
    first += notes[:fill]
    rest = docs[len(DOCUMENTS):] + audio[2:] + notes[fill:]
    random.Random(7).shuffle(rest)
    return first + rest


def worker_process(stack: Any) -> psutil.Process:
    nanny = psutil.Process(dict(stack.procs)["dask-worker"].pid)
    (worker,) = [c for c in nanny.children(recursive=True) if "spawn" in " ".join(c.cmdline())]
    return worker


def parse_children(worker: psutil.Process) -> list[psutil.Process]:
    return [c for c in worker.children() if "ingestflow.parsing.worker" in " ".join(c.cmdline())]


@dataclass
class Memory:
    worker_pid: int
    worker: int
    children: list[int]

    @classmethod
    def now(cls, stack: Any) -> Memory:
        worker = worker_process(stack)
        kids = []
        for c in parse_children(worker):
            try:
                kids.append(c.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        return cls(worker.pid, worker.memory_info().rss, kids)

    def line(self) -> str:
        kids = ", ".join(f"{k / 2**20:.0f}" for k in self.children) or "none"
        return f"worker (pid {self.worker_pid}) {self.worker / 2**20:.0f} MiB, parse children [{kids}] MiB"


@dataclass
class Sampler:
    """The peak and the worker pids seen, every 2 s, in a thread of its own."""

    stack: Any
    peak_worker: int = 0
    peak_child: int = 0
    pids: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(2.0):
            try:
                m = Memory.now(self.stack)
            except (ValueError, psutil.Error):  # the worker is being replaced right now
                continue
            self.peak_worker = max(self.peak_worker, m.worker)
            self.peak_child = max([self.peak_child, *m.children])
            if not self.pids or self.pids[-1] != m.worker_pid:
                self.pids.append(m.worker_pid)


def through(base: str, key: str, docs: list[tuple[str, bytes]]) -> dict[str, dict[str, Any]]:
    _, job_ids, errors = asyncio.run(upload_all(base, key, docs))
    assert not errors, f"{errors} uploads refused"
    return wait_all(base, key, job_ids, timeout=4 * 3600)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--copies", type=int, default=10, help="copies of each fixture document")
    ap.add_argument("--recordings", type=int, default=8)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    docs = corpus(args.docs, args.copies, args.recordings)

    with bench_stack(args.keep) as (settings, base, key, stack):
        print(f"soak: {len(docs)} documents ({len(DOCUMENTS) * args.copies} fixture documents, {args.recordings} "
              f"recordings, the rest notes); worker memory limit {settings.dask_memory_limit}, recycled above "
              f"{settings.dask_recycle_above:.0%} of it or after {settings.dask_worker_lifetime}; parse children "
              f"after {settings.parse_child_max_parses} parses or {settings.parse_child_max_rss_bytes >> 20} MiB",
              flush=True)
        sampler = Sampler(stack)
        threading.Thread(target=sampler.run, daemon=True).start()
        t0 = time.perf_counter()
        jobs = through(base, key, docs[:FIRST])
        first = Memory.now(stack)
        print(f"after the first {FIRST} ({time.perf_counter() - t0:.0f} s, {outcome(jobs)}): {first.line()}",
              flush=True)
        jobs |= through(base, key, docs[FIRST:])
        last = Memory.now(stack)
        sampler.stop.set()
        took = time.perf_counter() - t0
        print(f"after the last, {len(docs)} ({took:.0f} s, {len(docs) / took:.2f} docs/s, {outcome(jobs)}): "
              f"{last.line()}")
        ratio = last.worker / first.worker
        kids = f"{sum(last.children) / sum(first.children):.2f}" if first.children and last.children else "n/a"
        print(f"ratio last/first: worker {ratio:.2f} ({'within' if abs(ratio - 1) <= 0.2 else 'NOT within'} 20%), "
              f"parse children (sum) {kids}")
        print(f"peak: worker {sampler.peak_worker / 2**20:.0f} MiB, one parse child {sampler.peak_child / 2**20:.0f}"
              f" MiB; worker processes seen: {len(sampler.pids)} (replaced {len(sampler.pids) - 1} times)")
        failed = {j["document_id"]: j.get("error") for j in jobs.values() if j["status"] != "completed"}
        print(f"not completed: {failed or 'none'}")
        check_stores(settings, jobs)


if __name__ == "__main__":
    main()
