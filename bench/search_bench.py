"""Search latency at scale: p50/p95 of `GET /v1/search` end to end (query embedding, the owner's Chroma
collection, BM25 in PostgreSQL, fusion), at 10k and 100k chunks spread over 10 and over 1,000 owners
(`--large`: 1M as well).

It runs a PostgreSQL server, a Chroma server and the API of its own (nothing else of the stack: no upload is
made), fills them with synthetic chunks through the project's own write path (ingestflow.stores.vectors for the
vectors: random unit vectors of the embedding's 384 dimensions; ingestflow.stores.lexical for the texts: 60 words
drawn from a Zipf-distributed vocabulary, so common and rare terms behave as in prose), then asks queries of
3-6 vocabulary words as randomly chosen owners, one at a time.

Each size is measured twice: right after its chunks were written, and again once the servers have settled
(PostgreSQL's VACUUM ANALYZE of the new rows, what autovacuum does within a minute or two of a bulk insert, and a
pause for Chroma to fold its write log into the index), which is what a user searching later meets.

    .venv/bin/python bench/search_bench.py [--large] [--queries 200] [--data DIR]

`--data DIR` keeps the servers' data in DIR and reuses the corpora an earlier run left there, so a change to the
search can be measured at 1M chunks without filling again (about 30 minutes per owner count). Corpora are then
kept side by side (the 1,000 owners' search runs beside the 10 owners' chunks), not removed after measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ingestflow.db import get_engine  # noqa: E402
from ingestflow.settings import Settings  # noqa: E402
from ingestflow.stores.vectors import DocumentVectors, VectorStore  # noqa: E402

BASE = int(os.environ.get("INGESTFLOW_BENCH_PORT_BASE", "29000"))
API, CHROMA, PG = BASE, BASE + 1, BASE + 30
DIM, CHUNKS_PER_DOC, WORDS_PER_CHUNK, VOCAB = 384, 50, 60, 20_000
TODAY = ("before (issue 28: BM25's statistics counted per query), hybrid p50/p95 ms: 10k chunks over 10 owners 37/53, "
         "100k over 10 owners 50/68, 100k over 1,000 owners 38/46, 1M over 10 owners 278/392")


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start")


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code < 500


def start_servers(data: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    from ingestflow.shell.stack import postgres

    cluster = postgres.ensure_cluster(data)
    pg = subprocess.Popen(postgres.server_args(cluster, PG), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                          **postgres.popen_user())  # type: ignore[call-overload]
    _wait(lambda: postgres.ready(data, PG), "PostgreSQL")
    postgres.ensure_databases(data, PG)
    chroma = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--host", "127.0.0.1", "--port",
                               str(CHROMA), "--path", str(data / "chroma")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    _wait(lambda: _http_ok(f"http://127.0.0.1:{CHROMA}/api/v2/heartbeat"), "Chroma")
    return [pg, chroma], postgres.url(data, PG)


def start_api(env: dict[str, str]) -> subprocess.Popen[bytes]:
    api = subprocess.Popen([str(Path(sys.executable).parent / "uvicorn"), "api.main:app", "--host", "127.0.0.1",
                            "--port", str(API), "--log-level", "warning"], cwd=ROOT, env=env)
    _wait(lambda: _http_ok(f"http://127.0.0.1:{API}/health"), "API", timeout=120)
    return api


class Corpus:
    """Synthetic owners, documents and chunks, written the way the embed stage writes them."""

    def __init__(self, settings: Settings, owners: int, rng: random.Random, manifest: Path | None = None,
                 per_doc: int = CHUNKS_PER_DOC) -> None:
        from ingestflow.auth import create_key
        from ingestflow.db import session_scope

        self.settings, self.rng, self.manifest, self.per_doc = settings, rng, manifest, per_doc
        self.np_rng = np.random.default_rng(rng.randrange(2**32))
        weights = 1.0 / np.arange(1, VOCAB + 1)  # Zipf: a few words everywhere, most words rare
        self.p = weights / weights.sum()
        self.vocab = [f"w{i}" for i in range(VOCAB)]
        self.owners: list[str] = []
        self.keys: dict[str, str] = {}
        self.chunks = 0
        if manifest is not None and manifest.exists():  # filled by an earlier run with --data
            kept = json.loads(manifest.read_text())
            self.owners, self.keys, self.chunks = kept["owners"], kept["keys"], kept["chunks"]
            self.trim()
            return
        with session_scope(settings.sqlalchemy_url) as db:
            for n in range(owners):
                user, key = create_key(db, f"bench-{uuid.uuid4().hex[:8]}-{n}")
                self.owners.append(user.id)
                self.keys[user.id] = key
        self.save()

    def save(self, chunks: int | None = None) -> None:
        """Records the owners, their keys and how many chunks both servers hold, for --data."""
        if self.manifest is not None:
            self.manifest.write_text(json.dumps({"owners": self.owners, "keys": self.keys,
                                                 "chunks": self.chunks if chunks is None else chunks}))

    def trim(self) -> None:
        """A fill cut short leaves documents past the manifest's count (PostgreSQL writes a round while Chroma
        writes the one before it, and Chroma may hold part of a round): they go from both servers, so that each
        holds exactly the chunks counted."""
        from sqlalchemy import delete, select

        from ingestflow.db import Document, session_scope
        from ingestflow.stores.vectors import open_vector_store

        with session_scope(self.settings.sqlalchemy_url) as db:
            docs = db.execute(select(Document.id, Document.owner_id, Document.chunk_count)
                              .where(Document.owner_id.in_(self.owners))
                              .order_by(Document.created_at, Document.id)).all()
        counted = 0
        past: dict[str, list[str]] = {}
        for doc in docs:  # written in order: the first documents make up the counted chunks
            if counted < self.chunks:
                counted += doc.chunk_count
            else:
                past.setdefault(doc.owner_id, []).append(doc.id)
        if not past:
            return
        store = open_vector_store(self.settings)
        for owner, ids in past.items():
            store.delete_documents(owner, ids)
        with session_scope(self.settings.sqlalchemy_url) as db:  # their chunk rows cascade
            db.execute(delete(Document).where(Document.id.in_([i for ids in past.values() for i in ids])))
        print(f"removed {sum(map(len, past.values()))} documents written past the kept count of {self.chunks:,}")

    def texts(self, rows: int, n: int) -> list[str]:
        """`rows` texts of `n` words in one draw (a draw reads the 20,000 weights: drawn a chunk at a time, the
        bench's own process took as much CPU as Chroma while filling 1,000 owners)."""
        drawn = self.np_rng.choice(VOCAB, size=(rows, n), p=self.p)
        return [" ".join(self.vocab[i] for i in row) for row in drawn]

    def words(self, n: int) -> str:
        return self.texts(1, n)[0]

    def _write(self, store: VectorStore, batch: list[DocumentVectors], chunks: int) -> None:
        """A round's vectors to Chroma; then the manifest counts them (a fill cut short goes on from there)."""
        store.replace_documents(batch)
        self.save(chunks)

    def grow(self, total: int) -> float:
        """Add chunks, spread evenly over the owners, until there are `total`; seconds it took."""
        from ingestflow.db import ChunkText, Document, session_scope, utcnow
        from ingestflow.stores import lexical
        from ingestflow.stores.vectors import chunk_id, open_vector_store

        store = open_vector_store(self.settings)
        url = self.settings.sqlalchemy_url
        t0 = time.perf_counter()
        # Chroma writes a round's vectors while the next round's rows go to PostgreSQL: one after the other, each
        # server idled half the time (100k chunks took 240 s).
        chroma = ThreadPoolExecutor(max_workers=1)
        writing: Future[None] | None = None
        turn = 0
        while self.chunks < total:
            batch = []  # a document of each owner per round, so every owner holds about as many chunks
            per_owner = min(self.per_doc, -(-(total - self.chunks) // len(self.owners)))
            for owner in self.owners:
                if self.chunks >= total:
                    break
                n = min(per_owner, total - self.chunks)
                with session_scope(url) as db:
                    doc = Document(owner_id=owner, sha256=uuid.uuid4().hex, filename=f"d{turn}.md", title=f"d{turn}",
                                   kind="text", format="md", mime_type="text/markdown", size_bytes=1,
                                   vector_indexed=True, chunk_count=n, indexed_at=utcnow())
                    db.add(doc)
                    db.flush()
                    doc_id = doc.id
                vectors = self.np_rng.standard_normal((n, DIM)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                texts = self.texts(n, WORDS_PER_CHUNK)
                ids = [chunk_id(doc_id, i) for i in range(n)]
                metas = [{"owner_id": owner, "document_id": doc_id, "chunk_index": i, "kind": "text",
                          "title": f"d{turn}", "page_start": 1, "page_end": 1} for i in range(n)]
                batch.append(DocumentVectors(owner, doc_id, ids, vectors.tolist(), texts, metas))
                with session_scope(url) as db:
                    lexical.replace_chunks(db, [doc_id], [
                        ChunkText(id=c, owner_id=owner, document_id=doc_id, chunk_index=i, kind="text",
                                  collection=None, text=t, meta=m)
                        for i, (c, t, m) in enumerate(zip(ids, texts, metas, strict=True))])
                self.chunks += n
            if writing is not None:
                writing.result()
            writing = chroma.submit(self._write, store, batch, self.chunks)
            turn += 1
        if writing is not None:
            writing.result()
        chroma.shutdown()
        return time.perf_counter() - t0


def measure(corpus: Corpus, queries: int) -> dict[str, tuple[float, float]]:
    """p50/p95 ms of each mode, the modes taking turns query by query (each its own query and owner), so that a
    busy moment of the machine falls on both."""
    latencies: dict[str, list[float]] = {"hybrid": [], "vector": []}
    with httpx.Client(base_url=f"http://127.0.0.1:{API}", timeout=300) as http:
        for n in range(queries + 5):
            for mode, taken in latencies.items():
                owner = corpus.rng.choice(corpus.owners)
                q = corpus.words(corpus.rng.randint(3, 6))
                t0 = time.perf_counter()
                r = http.get("/v1/search", params={"q": q, "k": 10, "mode": mode},
                             headers={"Authorization": f"Bearer {corpus.keys[owner]}"})
                elapsed = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200, r.text
                assert r.json()["hits"], (q, owner)
                if n >= 5:  # the first few warm the model and the connections
                    taken.append(elapsed)
    return {mode: (statistics.median(taken), sorted(taken)[int(0.95 * (len(taken) - 1))])
            for mode, taken in latencies.items()}


def settle(settings: Settings, pause: float) -> None:
    """What the servers do by themselves within minutes of a bulk insert: PostgreSQL's autovacuum analyses and
    vacuums the new rows (done here at once, VACUUM ANALYZE being what it runs), Chroma folds its write log into
    the collections' indexes (given `pause` seconds)."""
    from sqlalchemy import text

    with get_engine(settings.sqlalchemy_url).connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("chunks", "lexical_terms", "lexical_stats", "documents"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    time.sleep(pause)


def remove(corpus: Corpus) -> None:
    from sqlalchemy import delete

    from ingestflow.db import User, session_scope
    from ingestflow.stores.vectors import open_vector_store

    store = open_vector_store(corpus.settings)
    for owner in corpus.owners:
        store.drop_owner(owner)
    with session_scope(corpus.settings.sqlalchemy_url) as db:
        db.execute(delete(User).where(User.id.in_(corpus.owners)))  # documents and chunk rows cascade


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--large", action="store_true", help="also 1M chunks")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sizes", default="10000,100000", help="chunk counts to measure at, comma-separated")
    ap.add_argument("--owners", default="10,1000", help="owner counts to spread them over")
    ap.add_argument("--data", type=Path, help="keep the servers' data here, and reuse the corpora found there")
    ap.add_argument("--pause", type=float, default=30, help="seconds the servers are left to settle")
    ap.add_argument("--chunks-per-doc", type=int, default=CHUNKS_PER_DOC,
                    help="chunks of each synthetic document: fewer, larger writes filled many owners faster while "
                         "Chroma kept a collection's write log until 1,000 records (collections made before e1df32d: "
                         "50-chunk documents took 5-6 min per 50k at 300k over 1,000 owners, 220-chunk ones 3,449 s "
                         "for the 650k after that)")
    args = ap.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")] + ([1_000_000] if args.large else [])
    data = args.data or Path(tempfile.mkdtemp(prefix="ingestflow-search-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "INGESTFLOW_DATA_DIR": str(data), "INGESTFLOW_POSTGRES_PORT": str(PG),
           "INGESTFLOW_CHROMA_PORT": str(CHROMA), "INGESTFLOW_API_PORT": str(API),
           "INGESTFLOW_QUERY_RATE_PER_S": "0", "PREFECT_API_URL": f"http://127.0.0.1:{BASE + 20}/api",
           "PREFECT_CLIENT_MAX_RETRIES": "0"}
    os.environ.update(env)
    procs, _url = start_servers(data)
    api = None
    try:
        from ingestflow.db import init_db

        settings = Settings()
        init_db(settings.sqlalchemy_url)
        api = start_api(env)
        print(TODAY)
        print(f"{'chunks':>9} {'owners':>6} {'insert s':>9}  {'measured':<14} hybrid p50/p95 ms   "
              "vector-only p50/p95 ms")
        for owners in [int(n) for n in args.owners.split(",")]:
            manifest = data / f"corpus-{owners}.json" if args.data else None
            corpus = Corpus(settings, owners, random.Random(owners), manifest, args.chunks_per_doc)
            for size in sizes:
                took = corpus.grow(size)
                for when in ("after filling", "settled"):
                    if when == "settled":
                        settle(settings, args.pause)
                    got = measure(corpus, args.queries)
                    print(f"{size:>9,} {owners:>6} {took:>9.0f}  {when:<14} {got['hybrid'][0]:>7.1f} / "
                          f"{got['hybrid'][1]:<7.1f}    {got['vector'][0]:>7.1f} / {got['vector'][1]:<7.1f}",
                          flush=True)
            if not args.data:
                remove(corpus)
    finally:
        engine = get_engine(Settings().sqlalchemy_url)
        engine.dispose()  # the bench's own pooled connections first
        for proc in [p for p in (api, *procs) if p is not None]:
            # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
            proc.send_signal(signal.SIGINT if proc is procs[0] else signal.SIGTERM)
            proc.wait(timeout=60)
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
