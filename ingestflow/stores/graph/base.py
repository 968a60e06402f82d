"""The graph-store contract. Two backends implement it: LadybugDB (embedded default) and Neo4j.

Every write is scoped to one (owner, document) and replaces that document's facts, so writing the
same document twice leaves the same graph as writing it once. Entities are shared across an owner's
documents (id = owner + label + normalised name) and never across owners.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class EntityMention:
    name: str
    label: str  # spaCy label: PERSON, ORG, GPE, DATE, MONEY, ...
    count: int = 1


@dataclass(frozen=True)
class ChunkFacts:
    chunk_id: str  # the same deterministic id as the chunk's vector in Chroma
    index: int
    text: str
    page: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    entities: Sequence[EntityMention] = field(default_factory=tuple)


@dataclass(frozen=True)
class EntitySummary:
    id: str
    name: str
    label: str
    mentions: int


@dataclass(frozen=True)
class Mention:
    document_id: str
    chunk_id: str
    chunk_index: int
    page: int | None
    start_s: float | None
    end_s: float | None
    count: int


@dataclass(frozen=True)
class Related:
    id: str
    name: str
    label: str
    weight: int


@dataclass(frozen=True)
class EntityDetail:
    id: str
    name: str
    label: str
    mentions: list[Mention]
    related: list[Related]


@dataclass(frozen=True)
class GraphCounts:
    documents: int
    chunks: int
    entities: int
    mentions: int
    related: int


def normalise_name(name: str) -> str:
    return " ".join(name.lower().split())


def entity_id(owner: str, label: str, name: str) -> str:
    key = f"{owner}\x1f{label}\x1f{normalise_name(name)}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class DocumentFacts:
    document_id: str
    title: str
    chunks: Sequence[ChunkFacts]


class GraphStore(Protocol):
    backend: str

    def write_documents(self, owner: str, docs: Sequence[DocumentFacts]) -> None:
        """`write_document` for each, all in one transaction: one commit (and one checkpoint) per batch."""

    def write_document(self, owner: str, document_id: str, title: str, chunks: Sequence[ChunkFacts]) -> GraphCounts:
        """Replace the document's Document/Chunk nodes, MENTIONS edges and its RELATED_TO co-occurrence
        edges (weight = chunks of this document naming both entities); returns this owner's counts."""

    def delete_document(self, owner: str, document_id: str) -> None:
        """Remove the document's facts and any of the owner's entities no longer mentioned anywhere."""

    def counts(self, owner: str) -> GraphCounts: ...

    def find_entities(self, owner: str, q: str | None, limit: int = 50) -> list[EntitySummary]: ...

    def get_entity(self, owner: str, entity_id: str) -> EntityDetail | None:
        """Mentions with chunk provenance; related entities with weights summed over documents."""

    def close(self) -> None: ...
