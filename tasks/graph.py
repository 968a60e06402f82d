"""graph: Document, Chunk and Entity nodes with MENTIONS and RELATED_TO edges, replaced per document."""

from __future__ import annotations

import json
from typing import Any

from prefect.concurrency.sync import concurrency

from deployments.names import GRAPH_WRITER_LIMIT
from ingestflow.graph import open_graph_store
from ingestflow.graph.base import ChunkFacts, EntityMention
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from ingestflow.vectors import chunk_id
from tasks.common import stage_task


def chunk_facts(ref: DocumentRef) -> list[ChunkFacts]:
    chunks = json.loads(ref.chunks_json.read_text())
    entities = json.loads(ref.entities_json.read_text())
    return [
        ChunkFacts(
            chunk_id=chunk_id(ref.id, c["index"]),
            index=c["index"],
            text=c["text"],
            page=c.get("page_start"),
            start_s=c.get("start_s"),
            end_s=c.get("end_s"),
            entities=tuple(EntityMention(e["name"], e["label"], e["count"]) for e in ents),
        )
        for c, ents in zip(chunks, entities, strict=True)
    ]


def write_document_graph(ref: DocumentRef) -> dict[str, Any]:
    settings = get_settings()
    facts = chunk_facts(ref)
    with concurrency(GRAPH_WRITER_LIMIT, occupy=1, lease_duration=600):
        store = open_graph_store(settings)
        try:
            store.write_document(ref.owner_id, ref.id, ref.title, facts)
        finally:
            store.close()
    return {"graph_backend": settings.graph_backend}


@stage_task("graph", timeout_s=900)
def graph(ref: DocumentRef) -> dict[str, Any]:
    return write_document_graph(ref)
