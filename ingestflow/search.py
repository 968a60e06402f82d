"""Vector search over one owner's chunks: the query vector, Chroma filters, and what each hit mentions.

The graph expansion and the chat build on these pieces (ingestflow.retrieval, ingestflow.chat).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ingestflow.db import Document, session_scope
from ingestflow.errors import TransientError
from ingestflow.graph.base import entity_id
from ingestflow.models import embedding_model
from ingestflow.settings import Settings
from ingestflow.vectors import open_vector_store


@dataclass(frozen=True)
class SearchFilters:
    kind: str | None = None
    document_id: str | None = None
    collection: str | None = None
    # Upload time of the document (Document.created_at), inclusive on both ends.
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Scope:
    """A Chroma `where` clause for one owner's chunks; `empty` when the filters rule out every document,
    so callers answer without asking Chroma at all."""

    where: dict[str, Any]
    empty: bool = False


@dataclass
class ChunkHit:
    chunk_id: str
    document_id: str
    text: str
    score: float  # the final ranking score
    metadata: dict[str, Any]
    vector_score: float  # cosine similarity of the chunk to the query
    entities: list[dict[str, Any]] = field(default_factory=list)
    # Names of the query entities (or their related entities) that pulled the chunk in or boosted it.
    expanded_from: list[str] | None = None


def embed_texts(settings: Settings, texts: Sequence[str]) -> list[list[float]]:
    model = embedding_model(settings.embedding_model)
    vectors = model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
    return [[float(x) for x in v] for v in vectors]


def embed_query(settings: Settings, query: str) -> list[float]:
    return embed_texts(settings, [query])[0]


def as_utc(value: datetime) -> datetime:
    # A naive timestamp from a query string is taken as UTC, the zone every row is written in.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def documents_in_range(settings: Settings, owner_id: str, since: datetime | None, until: datetime | None) -> list[str]:
    """The owner's document ids uploaded within [since, until].

    Chunk vectors carry no timestamp, so the date range is resolved in SQL and handed to Chroma as an
    id list; the row table is the one place upload times live.
    """
    stmt = select(Document.id).where(Document.owner_id == owner_id)
    if since is not None:
        stmt = stmt.where(Document.created_at >= as_utc(since))
    if until is not None:
        stmt = stmt.where(Document.created_at <= as_utc(until))
    # Short transaction of its own: SQLite takes the write lock at BEGIN, so never hold one across a search.
    with session_scope(settings.sqlalchemy_url) as db:
        return list(db.scalars(stmt))


def _owner_document_count(settings: Settings, owner_id: str) -> int:
    with session_scope(settings.sqlalchemy_url) as db:
        return int(db.scalar(select(func.count()).select_from(Document).where(Document.owner_id == owner_id)) or 0)


def scope(settings: Settings, owner_id: str, filters: SearchFilters) -> Scope:
    conds: list[dict[str, Any]] = [{"owner_id": owner_id}]
    if filters.kind:
        conds.append({"kind": filters.kind})
    if filters.collection:
        conds.append({"collection": filters.collection})
    doc_ids: list[str] | None = None
    if filters.since is not None or filters.until is not None:
        doc_ids = documents_in_range(settings, owner_id, filters.since, filters.until)
        if filters.document_id is None and len(doc_ids) == _owner_document_count(settings, owner_id):
            doc_ids = None  # the range covers everything: no need to ship every id to Chroma
    if filters.document_id:
        if doc_ids is not None and filters.document_id not in doc_ids:
            return Scope(where={}, empty=True)
        conds.append({"document_id": filters.document_id})
    elif doc_ids is not None:
        if not doc_ids:
            return Scope(where={}, empty=True)
        conds.append({"document_id": {"$in": doc_ids}})
    return Scope(where=conds[0] if len(conds) == 1 else {"$and": conds})


def _hit(cid: str, text: str | None, meta: dict[str, Any] | None, score: float) -> ChunkHit:
    metadata = dict(meta or {})
    return ChunkHit(cid, str(metadata.get("document_id", "")), text or "", score, metadata, score)


def query_chunks(settings: Settings, where: Scope, vector: Sequence[float], k: int) -> list[ChunkHit]:
    if where.empty or k <= 0:
        return []
    collection = open_vector_store(settings).collection
    try:
        res = collection.query(
            query_embeddings=[list(vector)], n_results=k, where=where.where,
            include=["documents", "metadatas", "distances"],
        )
    except Exception as exc:  # chromadb raises bare Exceptions for connection failures
        raise TransientError(f"vector search failed: {exc}") from exc
    return [
        _hit(cid, text, meta, 1.0 - float(dist))
        for cid, text, meta, dist in zip(
            res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
        )
    ]


def fetch_chunks(settings: Settings, where: Scope, ids: Sequence[str], vector: Sequence[float]) -> list[ChunkHit]:
    """Chunks by id, scored against `vector` like a query would score them. The same `where` applies, so
    ids found elsewhere (the graph) cannot reach past the owner or the filters."""
    if where.empty or not ids:
        return []
    collection = open_vector_store(settings).collection
    try:
        got = collection.get(ids=list(ids), where=where.where, include=["documents", "metadatas", "embeddings"])
    except Exception as exc:
        raise TransientError(f"reading chunks failed: {exc}") from exc
    hits = []
    for cid, text, meta, emb in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True):
        # Stored vectors are normalised (tasks/embed.py), so the dot product is the cosine Chroma reports.
        score = float(sum(a * b for a, b in zip(vector, emb, strict=True)))
        hits.append(_hit(cid, text, meta, score))
    return hits


@lru_cache(maxsize=256)
def _entities_file(path: Path, mtime_ns: int) -> list[list[dict[str, Any]]]:
    # Keyed by mtime: a re-run of the entity stage replaces the file atomically with a new mtime.
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, list) else []


def chunk_entities(settings: Settings, owner_id: str, document_id: str, index: int) -> list[dict[str, Any]]:
    """What the entity stage found in one chunk, with the graph id of each entity (for /v1/entities/{id})."""
    path = settings.derived_dir / document_id / "entities.json"
    try:
        per_chunk = _entities_file(path, path.stat().st_mtime_ns)
    except (OSError, ValueError):
        return []  # not extracted yet (or being rewritten): the hit is still worth showing
    if not 0 <= index < len(per_chunk):
        return []
    return [
        {"id": entity_id(owner_id, e["label"], e["name"]), "name": e["name"], "label": e["label"],
         "count": int(e.get("count", 1))}
        for e in per_chunk[index]
    ]


def attach_entities(settings: Settings, owner_id: str, hits: list[ChunkHit]) -> list[ChunkHit]:
    for hit in hits:
        index = hit.metadata.get("chunk_index")
        if isinstance(index, int):
            hit.entities = chunk_entities(settings, owner_id, hit.document_id, index)
    return hits

