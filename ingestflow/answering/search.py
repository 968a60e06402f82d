"""The pieces every search is made of: the filters and the scope they give, the query vector, the hit and
its provenance, and what each hit mentions. Hybrid ranking, the graph expansion and the chat build on them
(ingestflow.answering.retrieval, ingestflow.answering.chat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, or_, select

from ingestflow.chunks import FoundEntity, headings_of, read_entities
from ingestflow.db import Document, session_scope
from ingestflow.models import embedding_model
from ingestflow.settings import Settings
from ingestflow.stores.graph.base import entity_id
from ingestflow.stores.vectors import NoneOf, VectorHit, where_clause


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
    """Which of one owner's chunks a search may return: field -> value (a list: any of them), the same for the
    vector store's `where` and the lexical index's SQL. `empty` when the filters rule out every document, so
    callers answer without asking either."""

    conditions: dict[str, Any] = field(default_factory=dict)
    empty: bool = False

    @property
    def where(self) -> dict[str, Any] | None:
        return where_clause(self.conditions)


@dataclass
class ChunkHit:
    chunk_id: str
    document_id: str
    text: str
    score: float  # the final ranking score
    metadata: dict[str, Any]
    vector_score: float  # cosine similarity of the chunk to the query
    entities: list[HitEntity] = field(default_factory=list)
    # Names of the query entities (or their related entities) that pulled the chunk in or boosted it.
    expanded_from: list[str] | None = None

    @classmethod
    def of(cls, hit: VectorHit) -> ChunkHit:
        return cls(hit.chunk_id, hit.document_id, hit.text, hit.score, hit.metadata, hit.score)



class HitEntity(BaseModel):
    id: str
    name: str
    label: str
    count: int


class Passage(BaseModel):
    """A passage as search returns it and chat cites it: the chunk, its scores and where it comes from (pages and
    headings, or start and end seconds), as its stored metadata says."""

    chunk_id: str
    document_id: str
    title: str
    kind: str
    text: str
    score: float  # the final ranking score
    vector_score: float  # cosine similarity of the passage to the query's search vector
    page: int | None = None
    page_end: int | None = None
    headings: list[str] = []
    start_s: float | None = None
    end_s: float | None = None
    translation: bool = False  # from a recording's English translation, cited to the seconds it translates

    @staticmethod
    def fields(hit: ChunkHit) -> dict[str, Any]:
        meta = hit.metadata
        return {"chunk_id": hit.chunk_id, "document_id": hit.document_id, "text": hit.text,
                "score": round(hit.score, 6), "vector_score": round(hit.vector_score, 4),
                "title": str(meta.get("title", "")), "kind": str(meta.get("kind", "text")),
                "page": meta.get("page_start"), "page_end": meta.get("page_end"), "headings": headings_of(meta),
                "start_s": meta.get("start_s"), "end_s": meta.get("end_s"),
                "translation": bool(meta.get("translation", False))}


class Hit(Passage):
    """A search hit: the passage, what it mentions, and what pulled it in."""

    entities: list[HitEntity] = []
    # Entity names that pulled this chunk in (or lifted it) in a graph-expanded search; null otherwise.
    expanded_from: list[str] | None = None

    @classmethod
    def of(cls, hit: ChunkHit) -> Hit:
        return cls(**cls.fields(hit), entities=hit.entities,
                   expanded_from=hit.expanded_from)


class Source(Passage):
    """A passage as chat numbers and cites it; sources are numbered in the order of their score."""

    n: int
    cited: bool = False  # the answer carries this source's [n]

    @classmethod
    def of(cls, n: int, hit: ChunkHit) -> Source:
        return cls(**cls.fields(hit), n=n)


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


def unservable(settings: Settings, owner_id: str) -> list[str]:
    """The owner's documents search and chat leave out although some of their chunks may be stored: those whose
    first run has not completed (in flight, or failed after the embed stage wrote its vectors), and those whose
    last run failed, until a later run completes (`finish_job` sets `indexed_at` and clears `last_error`)."""
    stmt = select(Document.id).where(Document.owner_id == owner_id,
                                     or_(Document.indexed_at.is_(None), Document.last_error.is_not(None)))
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        return list(db.scalars(stmt))


def scope(settings: Settings, owner_id: str, filters: SearchFilters) -> Scope:
    """The filters as conditions on the owner's chunks (the owner is the collection itself, no condition), less
    the documents that are not to be served yet."""
    conds: dict[str, Any] = {"kind": filters.kind, "collection": filters.collection}
    hidden = unservable(settings, owner_id)
    doc_ids: list[str] | None = None
    if filters.since is not None or filters.until is not None:
        doc_ids = documents_in_range(settings, owner_id, filters.since, filters.until)
        if filters.document_id is None and len(doc_ids) == _owner_document_count(settings, owner_id):
            doc_ids = None  # the range covers everything: no need to ship every id to Chroma
    if filters.document_id:
        if (doc_ids is not None and filters.document_id not in doc_ids) or filters.document_id in hidden:
            return Scope(empty=True)
        conds["document_id"] = filters.document_id
    elif doc_ids is not None:
        doc_ids = sorted(set(doc_ids) - set(hidden))
        if not doc_ids:
            return Scope(empty=True)
        conds["document_id"] = doc_ids
    elif hidden:
        conds["document_id"] = NoneOf(hidden)
    return Scope(conditions={k: v for k, v in conds.items() if v is not None})


@lru_cache(maxsize=256)
def _entities_file(path: Path, mtime_ns: int) -> list[list[FoundEntity]]:
    # Keyed by mtime: a re-run of the entity stage replaces the file atomically with a new mtime.
    return read_entities(path)


def chunk_entities(settings: Settings, owner_id: str, document_id: str, index: int) -> list[HitEntity]:
    """What the entity stage found in one chunk, with the graph id of each entity (for /v1/entities/{id})."""
    path = settings.derived_dir / document_id / "entities.json"
    try:
        per_chunk = _entities_file(path, path.stat().st_mtime_ns)
    except (OSError, ValueError):
        return []  # not extracted yet (or being rewritten): the hit is still worth showing
    if not 0 <= index < len(per_chunk):
        return []
    return [HitEntity(id=entity_id(owner_id, e.label, e.name), name=e.name, label=e.label, count=e.count)
            for e in per_chunk[index]]


def attach_entities(settings: Settings, owner_id: str, hits: list[ChunkHit]) -> list[ChunkHit]:
    for hit in hits:
        index = hit.metadata.get("chunk_index")
        if isinstance(index, int):
            hit.entities = chunk_entities(settings, owner_id, hit.document_id, index)
    return hits

