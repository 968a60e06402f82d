"""Vectors in a Chroma server, one collection per owner: the only code that talks to Chroma.

Isolation by construction: an owner's vectors live in the collection `<space>-<owner id>` (`chunks-...` for
document chunks, `turns-...` for conversation turns), so a query cannot reach another owner's vectors, and it
pays no metadata filter for the owner (on 100k vectors the `owner_id` filter made a query 20x slower). A
collection is created by its first write and removed with its owner's last document (ingestflow/jobs/purge.py).
Ids are deterministic (document id + chunk index, or the turn id), so writes repeat safely.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

from ingestflow.errors import TransientError

MAX_BATCH = 5000  # Chroma refuses batches above 5461
CHUNKS, TURNS = "chunks", "turns"
# Chroma collection names: 3-512 characters of [a-zA-Z0-9._-], starting and ending with a letter or digit.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
T = TypeVar("T")


@dataclass(frozen=True)
class VectorHit:
    chunk_id: str
    document_id: str
    text: str
    score: float  # cosine similarity to the query vector
    metadata: dict[str, Any]


# A new collection's index settings. Chroma keeps every write in its log (`embeddings_queue` in chroma.sqlite3,
# deleted vectors too) until the collection's HNSW index is persisted, which happens once hnsw:sync_threshold
# records have arrived since the last time: 1,000 by default, so an owner with fewer chunks never lets go of any
# (chroma-core/chroma#2605). Filling 1,000 owners, the log held 638,580 rows at 590k chunks and each write cost more
# than the last. At 100 (and a batch of 100, which must not exceed it), 40 collections of 800 chunks wrote in
# 18.4 s instead of 42.9 s and left 40 log rows instead of 32,000, and one of 40,000 chunks took no longer (46.9 s
# against 49.8 s; chroma 1.5.9, this machine). Collections made before keep their settings.
COLLECTION_METADATA = {"hnsw:space": "cosine", "hnsw:sync_threshold": 100, "hnsw:batch_size": 100}


@dataclass(frozen=True)
class DocumentVectors:
    """Everything one document puts in the store: its chunks' ids, vectors, texts and metadata."""

    owner_id: str
    document_id: str
    ids: Sequence[str]
    vectors: Sequence[Sequence[float]]
    texts: Sequence[str]
    metadatas: Sequence[dict[str, Any]]


def chunk_id(document_id: str, index: int) -> str:
    return f"{document_id}:{index:05d}"


def chunk_index(chunk_id: str) -> int:
    """The index a chunk id was made from (chunk_id's inverse)."""
    return int(chunk_id.rsplit(":", 1)[1])


class NoneOf(tuple[str, ...]):
    """A condition's values that the field must not take: Chroma's `$nin`, SQL's `<> ALL`."""

    __slots__ = ()


def where_clause(conditions: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Chroma `where` from field -> value (a list or tuple means any of them, a NoneOf none of them; None is no
    condition)."""
    conds: list[dict[str, Any]] = []
    for key, value in conditions.items():
        if value is None:
            continue
        if isinstance(value, NoneOf):
            conds.append({key: {"$nin": list(value)}})
        else:
            conds.append({key: {"$in": list(value)}} if isinstance(value, list | tuple) else {key: value})
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else {"$and": conds}


def collection_name(space: str, owner_id: str) -> str:
    name = f"{space}-{owner_id}"
    if not _NAME.match(name):
        raise ValueError(f"owner id {owner_id!r} cannot name a Chroma collection")
    return name


@lru_cache(maxsize=8)
def _client(host: str, port: int) -> Any:
    import chromadb

    try:
        return chromadb.HttpClient(host=host, port=port)
    except Exception as exc:  # chromadb raises bare Exceptions for connection failures
        raise TransientError(f"Chroma at {host}:{port} unavailable: {exc}") from exc


def _is_missing(exc: Exception) -> bool:
    # A handle to a collection another process has removed (purge of the owner's last document).
    return type(exc).__name__ in ("NotFoundError", "InvalidCollectionException") or "does not exist" in str(exc)


class VectorStore:
    """One space (chunks or turns) of a Chroma server, addressed by owner."""

    _handles: dict[tuple[str, int, str], Any] = {}
    _lock = threading.Lock()

    def __init__(self, host: str, port: int, space: str) -> None:
        self.host, self.port, self.space = host, port, space

    # ------------------------------------------------------------------------------------------ collections

    def _collection(self, owner_id: str, create: bool) -> Any | None:
        key = (self.host, self.port, collection_name(self.space, owner_id))
        with self._lock:
            handle = self._handles.get(key)
        if handle is not None:
            return handle
        client = _client(self.host, self.port)
        try:
            if create:
                # embedding_function=None: vectors always come from our own model, and Chroma must never
                # try to fetch its default ONNX model (no network here).
                handle = client.get_or_create_collection(key[2], embedding_function=None,
                                                         metadata=COLLECTION_METADATA)
            else:
                handle = client.get_collection(key[2], embedding_function=None)
        except Exception as exc:
            if not create and _is_missing(exc):
                return None  # the owner has nothing in this space yet
            raise TransientError(f"Chroma at {self.host}:{self.port} unavailable: {exc}") from exc
        with self._lock:
            self._handles[key] = handle
        return handle

    def _forget(self, owner_id: str) -> None:
        with self._lock:
            self._handles.pop((self.host, self.port, collection_name(self.space, owner_id)), None)

    def _run(self, owner_id: str, create: bool, what: str, call: Callable[[Any], T], empty: T) -> T:
        """`call` on the owner's collection; `empty` when it does not exist and `create` is false. A cached
        handle whose collection was removed meanwhile is opened again once."""
        for attempt in (1, 2):
            handle = self._collection(owner_id, create)
            if handle is None:
                return empty
            try:
                return call(handle)
            except TransientError:
                raise
            except Exception as exc:  # chromadb raises bare Exceptions for connection failures
                self._forget(owner_id)
                if attempt == 1 and _is_missing(exc):
                    continue
                if _is_missing(exc) and not create:
                    return empty
                raise TransientError(f"{what} failed: {exc}") from exc
        return empty

    def owners(self) -> list[str]:
        """Owners with a collection in this space."""
        prefix, page = f"{self.space}-", 1000
        names: list[str] = []
        try:
            while True:
                batch = _client(self.host, self.port).list_collections(limit=page, offset=len(names))
                names += [str(getattr(c, "name", c)) for c in batch]
                if len(batch) < page:
                    break
        except Exception as exc:
            raise TransientError(f"listing Chroma collections failed: {exc}") from exc
        return sorted(n.removeprefix(prefix) for n in names if n.startswith(prefix))

    def drop_owner(self, owner_id: str) -> None:
        self._forget(owner_id)
        try:
            _client(self.host, self.port).delete_collection(collection_name(self.space, owner_id))
        except Exception as exc:
            if not _is_missing(exc):
                raise TransientError(f"removing a Chroma collection failed: {exc}") from exc

    # ------------------------------------------------------------------------------------------ writes

    def replace_documents(self, docs: Sequence[DocumentVectors]) -> None:
        """Each document's vectors replaced as a whole: per owner one delete and as few adds as Chroma's batch
        limit allows (two round trips per document cost more than the embedding of a short note)."""
        by_owner: dict[str, list[DocumentVectors]] = {}
        for doc in docs:
            by_owner.setdefault(doc.owner_id, []).append(doc)
        for owner_id, owned in by_owner.items():
            # Delete-then-add beats upserting existing ids by 5x here, and drops chunks a re-parse no longer
            # makes. A silent recording has no chunks: the delete alone is its whole update.
            def write(col: Any, owned: list[DocumentVectors] = owned) -> None:
                col.delete(where={"document_id": {"$in": [d.document_id for d in owned]}})
                self._add(col, [i for d in owned for i in d.ids], [list(v) for d in owned for v in d.vectors],
                          [t for d in owned for t in d.texts], [m for d in owned for m in d.metadatas], upsert=False)

            self._run(owner_id, True, "writing vectors", write, None)

    def upsert(self, owner_id: str, ids: Sequence[str], vectors: Sequence[Sequence[float]], texts: Sequence[str],
               metadatas: Sequence[dict[str, Any]]) -> None:
        self._run(owner_id, True, "writing vectors",
                  lambda col: self._add(col, ids, [list(v) for v in vectors], texts, metadatas, upsert=True), None)

    @staticmethod
    def _add(col: Any, ids: Sequence[str], vectors: list[list[float]], texts: Sequence[str],
             metadatas: Sequence[dict[str, Any]], upsert: bool) -> None:
        put = col.upsert if upsert else col.add
        for start in range(0, len(ids), MAX_BATCH):
            end = start + MAX_BATCH
            put(ids=list(ids[start:end]), embeddings=vectors[start:end], documents=list(texts[start:end]),
                metadatas=list(metadatas[start:end]))

    def delete_documents(self, owner_id: str, document_ids: Iterable[str]) -> None:
        where = where_clause({"document_id": list(document_ids)})
        self._run(owner_id, False, "deleting vectors", lambda col: col.delete(where=where), None)

    def delete(self, owner_id: str, conditions: Mapping[str, Any]) -> None:
        where = where_clause(conditions)
        self._run(owner_id, False, "deleting vectors", lambda col: col.delete(where=where), None)

    # ------------------------------------------------------------------------------------------ reads

    def count(self, owner_id: str, document_id: str | None = None) -> int:
        if document_id is None:
            return self._run(owner_id, False, "counting vectors", lambda col: int(col.count()), 0)
        where = where_clause({"document_id": document_id})
        return self._run(owner_id, False, "counting vectors",
                         lambda col: len(col.get(where=where, include=[])["ids"]), 0)

    def query(self, owner_id: str, vector: Sequence[float], k: int,
              where: dict[str, Any] | None = None) -> list[VectorHit]:
        if k <= 0:
            return []

        def run(col: Any) -> list[VectorHit]:
            res = col.query(query_embeddings=[list(vector)], n_results=k, where=where,
                            include=["documents", "metadatas", "distances"])
            return [_hit(cid, text, meta, 1.0 - float(dist)) for cid, text, meta, dist in
                    zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True)]

        return self._run(owner_id, False, "vector search", run, [])

    def get(self, owner_id: str, ids: Sequence[str], vector: Sequence[float],
            where: dict[str, Any] | None = None) -> list[VectorHit]:
        """Vectors by id, scored against `vector` as a query would score them. The same `where` applies, so
        ids found elsewhere (the lexical index, the graph) cannot reach past the filters."""
        if not ids:
            return []

        def run(col: Any) -> list[VectorHit]:
            got = col.get(ids=list(ids), where=where, include=["documents", "metadatas", "embeddings"])
            if not got["ids"]:
                return []
            return [_hit(cid, text, meta, float(cos)) for cid, text, meta, cos in
                    zip(got["ids"], got["documents"], got["metadatas"], _cosines(got["embeddings"], vector),
                        strict=True)]

        return self._run(owner_id, False, "reading vectors", run, [])

    def cosines(self, owner_id: str, ids: Sequence[str], vector: Sequence[float],
                where: dict[str, Any] | None = None) -> dict[str, float]:
        """Ids to their cosine with `vector`, for chunks whose text is known already (the lexical index's hits):
        the vectors alone are read, not their texts and metadata again (at 100k chunks, 30 ids: 3.2 ms against
        5.5 ms for `get`; a query restricted to the ids took 7.2). The same `where` applies as in `get`."""
        if not ids:
            return {}

        def run(col: Any) -> dict[str, float]:
            got = col.get(ids=list(ids), where=where, include=["embeddings"])
            if not got["ids"]:
                return {}
            return dict(zip(got["ids"], _cosines(got["embeddings"], vector).tolist(), strict=True))

        return self._run(owner_id, False, "reading vectors", run, {})

    def existing(self, owner_id: str, ids: Sequence[str]) -> set[str]:
        """Which of these ids the owner's collection holds."""
        if not ids:
            return set()
        return self._run(owner_id, False, "reading vectors",
                         lambda col: set(col.get(ids=list(ids), include=[])["ids"]), set())

    def drop_legacy(self) -> None:
        """Remove the pre-migration single collection of this space (ingestflow/stores/vector_migration.py)."""
        try:
            _client(self.host, self.port).delete_collection(self.space)
        except Exception as exc:
            if not _is_missing(exc):
                raise TransientError(f"removing a Chroma collection failed: {exc}") from exc

    def page(self, owner_id: str | None, offset: int, limit: int) -> dict[str, Any]:
        """A page of everything in one collection (the owner's, or with owner None the pre-migration single
        collection named like the space): ids, embeddings, documents, metadatas."""
        name = self.space if owner_id is None else collection_name(self.space, owner_id)
        try:
            col = _client(self.host, self.port).get_collection(name, embedding_function=None)
            got: dict[str, Any] = col.get(limit=limit, offset=offset,
                                          include=["embeddings", "documents", "metadatas"])
        except Exception as exc:
            if _is_missing(exc):
                return {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
            raise TransientError(f"reading vectors failed: {exc}") from exc
        return got


def _cosines(embeddings: Any, vector: Sequence[float]) -> np.ndarray:
    """Each stored vector's cosine with `vector`: stored vectors are normalised (tasks/embed.py), so the dot product
    is the cosine Chroma reports, and one matrix product computes them all."""
    return np.asarray(embeddings, dtype=np.float64) @ np.asarray(vector, dtype=np.float64)


def _hit(cid: str, text: str | None, meta: Mapping[str, Any] | None, score: float) -> VectorHit:
    metadata = dict(meta or {})
    return VectorHit(cid, str(metadata.get("document_id", "")), text or "", score, metadata)


def open_vector_store(settings: Any, space: str | None = None) -> VectorStore:
    return VectorStore(settings.chroma_host, settings.chroma_port, space or settings.chroma_collection)
