"""A chunk, as the chunk stage writes it (`chunks.json`, for documents and recordings alike) and embed, entities,
graph and summarise read it; its metadata to and from the stores, in one place; and the entities found in each
chunk (`entities.json`, written by extract-entities, read by the graph stage and by search hits)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from ingestflow.atomic_files import write_atomic
from ingestflow.refs import DocumentRef

# Chroma's metadata values are scalars: a heading path is stored joined, and split again when read.
HEADINGS_SEP = " > "


class Chunk(BaseModel):
    index: int
    text: str
    # What gets embedded: a document chunk's text with its heading path prefixed, so a chunk reading "It was
    # introduced in 1964" still says what "it" is; a recording's text as it is.
    embed_text: str
    page_start: int | None = None
    page_end: int | None = None
    headings: list[str] = []
    start_s: float | None = None
    end_s: float | None = None
    translation: bool = False  # a window of a recording's English translation, not of what was heard


_CHUNKS = TypeAdapter(list[Chunk])


class FoundEntity(BaseModel):
    """An entity named in a chunk, and how often."""

    name: str
    label: str  # spaCy's label: PERSON, ORG, GPE, ...
    count: int = 1


_PER_CHUNK = TypeAdapter(list[list[FoundEntity]])


def write_chunks(path: Path, chunks: Sequence[Chunk]) -> None:
    write_atomic(path, json.dumps([c.model_dump() for c in chunks]))


def read_chunks(path: Path) -> list[Chunk]:
    return _CHUNKS.validate_json(path.read_bytes())


def write_entities(path: Path, per_chunk: Sequence[Sequence[FoundEntity]]) -> None:
    write_atomic(path, json.dumps([[e.model_dump() for e in found] for found in per_chunk]))


def read_entities(path: Path) -> list[list[FoundEntity]]:
    return _PER_CHUNK.validate_json(path.read_bytes())


def store_metadata(ref: DocumentRef, chunk: Chunk) -> dict[str, str | int | float]:
    """What the vector store and the lexical rows keep beside a chunk's text: whose, which document, where in it."""
    meta: dict[str, str | int | float | None] = {
        "owner_id": ref.owner_id,
        "document_id": ref.id,
        "chunk_index": chunk.index,
        "kind": ref.kind,
        "title": ref.title,
        "collection": ref.collection,
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        "headings": HEADINGS_SEP.join(chunk.headings) or None,
        "start_s": chunk.start_s,
        "end_s": chunk.end_s,
        "translation": True if chunk.translation else None,
    }
    return {k: v for k, v in meta.items() if v is not None}  # Chroma metadata values may not be None


def headings_of(meta: Mapping[str, Any]) -> list[str]:
    """The heading path of a chunk's stored metadata."""
    return [p for p in str(meta.get("headings") or "").split(HEADINGS_SEP) if p]
