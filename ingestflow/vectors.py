"""Chunk vectors in a Chroma server. Ids are deterministic (document id + chunk index), so writes repeat safely."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ingestflow.errors import TransientError

MAX_BATCH = 5000  # Chroma refuses batches above 5461


@dataclass(frozen=True)
class VectorHit:
    chunk_id: str
    document_id: str
    text: str
    score: float
    metadata: dict[str, Any]


def chunk_id(document_id: str, index: int) -> str:
    return f"{document_id}:{index:05d}"


@lru_cache(maxsize=4)
def _collection(host: str, port: int, name: str) -> Any:
    import chromadb

    try:
        client = chromadb.HttpClient(host=host, port=port)
        # embedding_function=None: vectors always come from our own model, and Chroma must never
        # try to fetch its default ONNX model (no network here).
        return client.get_or_create_collection(name, embedding_function=None, metadata={"hnsw:space": "cosine"})
    except Exception as exc:  # chromadb raises bare Exceptions for connection failures
        raise TransientError(f"Chroma at {host}:{port} unavailable: {exc}") from exc


@dataclass(frozen=True)
class DocumentVectors:
    """Everything one document puts in the store: its chunks' ids, vectors, texts and metadata."""

    document_id: str
    ids: Sequence[str]
    vectors: Sequence[Sequence[float]]
    texts: Sequence[str]
    metadatas: Sequence[dict[str, Any]]


class VectorStore:
    def __init__(self, host: str, port: int, collection: str) -> None:
        self._args = (host, port, collection)

    @property
    def collection(self) -> Any:
        return _collection(*self._args)

    def replace_documents(self, docs: Sequence[DocumentVectors]) -> None:
        """Each document's vectors replaced as a whole: one delete and as few adds as Chroma's batch limit
        allows for all of them (two round trips per document cost more than the embedding of a short note)."""
        if not docs:
            return
        # Delete-then-add beats upserting existing ids by 5x here, and drops chunks a re-parse no longer makes.
        ids = [i for d in docs for i in d.ids]
        vectors = [list(v) for d in docs for v in d.vectors]
        texts = [t for d in docs for t in d.texts]
        metadatas = [m for d in docs for m in d.metadatas]
        try:
            self.collection.delete(where={"document_id": {"$in": [d.document_id for d in docs]}})
            # A silent recording has no chunks: the delete alone is its whole update.
            for start in range(0, len(ids), MAX_BATCH):
                end = start + MAX_BATCH
                self.collection.add(ids=ids[start:end], embeddings=vectors[start:end], documents=texts[start:end],
                                    metadatas=metadatas[start:end])
        except TransientError:
            raise
        except Exception as exc:
            raise TransientError(f"writing vectors failed: {exc}") from exc

    def delete_document(self, document_id: str) -> None:
        self.collection.delete(where={"document_id": document_id})

    def count(self, owner_id: str, document_id: str | None = None) -> int:
        got = self.collection.get(where=_where(owner_id, document_id), include=[])
        return len(got["ids"])

    def query(
        self, owner_id: str, vector: Sequence[float], k: int, filters: dict[str, Any] | None = None
    ) -> list[VectorHit]:
        res = self.collection.query(
            query_embeddings=[list(vector)],
            n_results=k,
            where=_where(owner_id, None, filters),
            include=["documents", "metadatas", "distances"],
        )
        hits = []
        for cid, text, meta, dist in zip(
            res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
        ):
            hits.append(VectorHit(cid, str(meta["document_id"]), text or "", 1.0 - float(dist), dict(meta)))
        return hits


def _where(owner_id: str, document_id: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    conds: list[dict[str, Any]] = [{"owner_id": owner_id}]
    if document_id:
        conds.append({"document_id": document_id})
    for key, value in (extra or {}).items():
        if value is not None:
            conds.append({key: value})
    return conds[0] if len(conds) == 1 else {"$and": conds}


def open_vector_store(settings: Any) -> VectorStore:
    return VectorStore(settings.chroma_host, settings.chroma_port, settings.chroma_collection)
