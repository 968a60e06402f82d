"""embed: sentence-transformers vectors for every chunk, written to Chroma under deterministic ids."""

from __future__ import annotations

import json
from typing import Any

from ingestflow.models import embedding_model, embedding_model_name
from ingestflow.pipeline import EmbedResult
from ingestflow.progress import StageProgress
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from ingestflow.vectors import chunk_id, open_vector_store
from tasks.common import stage_task

BATCH = 64


def chunk_metadata(ref: DocumentRef, chunk: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "owner_id": ref.owner_id,
        "document_id": ref.id,
        "chunk_index": chunk["index"],
        "kind": ref.kind,
        "title": ref.title,
        "collection": ref.collection,
        "page_start": chunk.get("page_start"),
        "page_end": chunk.get("page_end"),
        "headings": " > ".join(chunk.get("headings") or []) or None,
        "start_s": chunk.get("start_s"),
        "end_s": chunk.get("end_s"),
    }
    # Chroma metadata values may not be None.
    return {k: v for k, v in meta.items() if v is not None}


def embed_document(ref: DocumentRef) -> EmbedResult:
    settings = get_settings()
    chunks = json.loads(ref.chunks_json.read_text())
    model = embedding_model(settings.embedding_model)
    progress = StageProgress(ref.job_id, "Embedding", len(chunks), "chunks")
    vectors: list[list[float]] = []
    for start in range(0, len(chunks), BATCH):
        batch = [c["embed_text"] for c in chunks[start : start + BATCH]]
        vectors += model.encode(batch, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True).tolist()
        progress.advance(len(vectors))
    progress.check_cancelled()  # last chance before anything is written
    open_vector_store(settings).replace_document(
        ref.id,
        [chunk_id(ref.id, c["index"]) for c in chunks],
        vectors,
        [c["text"] for c in chunks],
        [chunk_metadata(ref, c) for c in chunks],
    )
    return EmbedResult(vector_count=len(chunks), model=embedding_model_name(settings.embedding_model))


@stage_task("embed")
def embed(ref: DocumentRef) -> EmbedResult:
    """Vectors for every chunk, replacing the document's vectors in Chroma under deterministic ids."""
    return embed_document(ref)
