"""graph: Document, Chunk and Entity nodes with MENTIONS and RELATED_TO edges for many documents, each
document's facts replaced, all in one transaction."""

from __future__ import annotations

from itertools import groupby

from ingestflow.chunks import read_chunks, read_entities
from ingestflow.jobs.progress import cancelled_jobs
from ingestflow.pipeline import GraphResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from ingestflow.stores.graph import writing
from ingestflow.stores.graph.base import ChunkFacts, DocumentFacts, EntityMention
from ingestflow.stores.vectors import chunk_id
from tasks.common import stage_task


def chunk_facts(ref: DocumentRef) -> list[ChunkFacts]:
    chunks = read_chunks(ref.chunks_json)
    entities = read_entities(ref.entities_json)
    return [
        ChunkFacts(
            chunk_id=chunk_id(ref.id, c.index),
            index=c.index,
            text=c.text,
            page=c.page_start,
            start_s=c.start_s,
            end_s=c.end_s,
            entities=tuple(EntityMention(e.name, e.label, e.count) for e in ents),
        )
        for c, ents in zip(chunks, entities, strict=True)
    ]


def write_document_graph(refs: list[DocumentRef]) -> list[GraphResult]:
    settings = get_settings()
    facts = {ref.id: DocumentFacts(ref.id, ref.title, chunk_facts(ref)) for ref in refs}
    with writing(settings) as store:
        # Cancelled or deleted meanwhile: nothing of theirs may be written. Checked under the writer lock, which
        # a DELETE's purge also takes after cancelling the job, so a purge never runs between check and write.
        cancelled = cancelled_jobs([r.job_id for r in refs])
        live = sorted((r for r in refs if r.job_id not in cancelled), key=lambda r: r.owner_id)
        for owner, owned in groupby(live, key=lambda r: r.owner_id):
            store.write_documents(owner, [facts[r.id] for r in owned])
    return [GraphResult(model=settings.graph_backend, units=len(facts[r.id].chunks)) for r in refs]


@stage_task("graph")
def graph(refs: list[DocumentRef]) -> list[GraphResult]:
    """These documents' chunks, entities and relations into the graph store, in one transaction."""
    return write_document_graph(refs)
