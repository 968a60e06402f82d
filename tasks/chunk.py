"""chunk: docling's HybridChunker with the embedding model's tokenizer; each chunk keeps pages and headings."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ingestflow import documents
from ingestflow.models import embedding_model_path
from ingestflow.refs import DocumentRef, write_atomic
from ingestflow.settings import get_settings
from tasks.common import stage_task


def chunk_document(ref: DocumentRef) -> dict[str, Any]:
    settings = get_settings()
    doc = documents.load_document(ref.parsed_json)
    chunks = documents.chunk(
        doc, tokenizer_path=embedding_model_path(settings.embedding_model), max_tokens=settings.chunk_max_tokens
    )
    write_atomic(ref.chunks_json, json.dumps([asdict(c) for c in chunks]))
    return {"chunk_count": len(chunks)}


@stage_task("chunk", timeout_s=600)
def chunk(ref: DocumentRef) -> dict[str, Any]:
    return chunk_document(ref)
