"""graph: Document, Chunk and Entity nodes with MENTIONS and RELATED_TO edges, replaced per document."""

from __future__ import annotations

import json

from ingestflow.graph import writing
from ingestflow.graph.base import ChunkFacts, EntityMention
from ingestflow.pipeline import GraphResult
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


def write_document_graph(ref: DocumentRef) -> GraphResult:
    settings = get_settings()
    facts = chunk_facts(ref)
    with writing(settings) as store:
        store.write_document(ref.owner_id, ref.id, ref.title, facts)
    return GraphResult(model=settings.graph_backend)


@stage_task("graph")
def graph(ref: DocumentRef) -> GraphResult:
    """The document's chunks, entities and relations, replaced in the graph store in one transaction."""
    return write_document_graph(ref)
