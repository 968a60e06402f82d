"""chunk: docling's HybridChunker with the embedding model's tokenizer; each chunk keeps pages and headings."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ingestflow import audio, documents
from ingestflow.models import embedding_model_path
from ingestflow.pipeline import ChunkResult
from ingestflow.refs import DocumentRef, write_atomic
from ingestflow.settings import get_settings
from tasks.common import stage_task


def chunk_recording(ref: DocumentRef) -> list[dict[str, Any]]:
    """Chunks of the improved transcript by time; each keeps its start and end seconds."""
    settings = get_settings()
    transcript = audio.Transcript.from_dict(json.loads(ref.transcript_improved.read_text()))
    tokenizer = embedding_model_path(settings.embedding_model)
    return audio.chunk_by_time(
        transcript,
        count_tokens=lambda text: documents.count_tokens(text, tokenizer_path=tokenizer),
        max_tokens=settings.chunk_max_tokens,
    )


def chunk_document(ref: DocumentRef) -> ChunkResult:
    if ref.kind == "audio":
        records = chunk_recording(ref)
        write_atomic(ref.chunks_json, json.dumps(records))
        return ChunkResult(chunk_count=len(records))
    settings = get_settings()
    doc = documents.load_document(ref.parsed_json)
    chunks = documents.chunk(
        doc, tokenizer_path=embedding_model_path(settings.embedding_model), max_tokens=settings.chunk_max_tokens
    )
    write_atomic(ref.chunks_json, json.dumps([asdict(c) for c in chunks]))
    return ChunkResult(chunk_count=len(chunks))


@stage_task("chunk")
def chunk(ref: DocumentRef) -> ChunkResult:
    """Chunks with provenance: pages and headings, or start/end seconds."""
    return chunk_document(ref)
