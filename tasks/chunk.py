"""chunk: docling's HybridChunker with the embedding model's tokenizer; each chunk keeps pages and headings."""

from __future__ import annotations

import json
from pathlib import Path

from ingestflow.audio.chunking import chunk_by_time
from ingestflow.audio.transcript import Transcript
from ingestflow.chunks import Chunk, write_chunks
from ingestflow.models import embedding_model_path
from ingestflow.parsing import chunking
from ingestflow.parsing.persistence import load_document
from ingestflow.pipeline import ChunkResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.common import stage_task


def chunk_recording(ref: DocumentRef) -> list[Chunk]:
    """Windows of a few sentences of the improved transcript (10-30 s); each keeps its start and end seconds.
    The English translation, where there is one, is chunked the same way after them, its chunks marked."""
    settings = get_settings()
    tokenizer = embedding_model_path(settings.embedding_model)

    def windows(path: Path) -> list[Chunk]:
        return chunk_by_time(
            Transcript.from_dict(json.loads(path.read_text())),
            count_tokens=lambda text: chunking.count_tokens(text, tokenizer_path=tokenizer),
            max_tokens=settings.chunk_max_tokens,
        )

    chunks = windows(ref.transcript_improved)
    if ref.translate and ref.transcript_translation.exists():
        chunks += [c.model_copy(update={"index": len(chunks) + i, "translation": True})
                   for i, c in enumerate(windows(ref.transcript_translation))]
    return chunks


def chunk_document(ref: DocumentRef) -> ChunkResult:
    if ref.kind == "audio":
        records = chunk_recording(ref)
        write_chunks(ref.chunks_json, records)
        return ChunkResult(chunk_count=len(records))
    settings = get_settings()
    doc = load_document(ref.parsed_json)
    chunks = chunking.chunk(
        doc, tokenizer_path=embedding_model_path(settings.embedding_model), max_tokens=settings.chunk_max_tokens
    )
    write_chunks(ref.chunks_json, chunks)
    return ChunkResult(chunk_count=len(chunks))


@stage_task("chunk")
def chunk(ref: DocumentRef) -> ChunkResult:
    """Chunks with provenance: pages and headings, or start/end seconds."""
    return chunk_document(ref)
