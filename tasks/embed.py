"""embed: sentence-transformers vectors for the chunks of many documents in one model call, written to each
owner's Chroma collection under deterministic ids, and the chunks' texts written beside them in PostgreSQL for
lexical search (a document's vectors and rows are each replaced as a whole, so a repeat changes nothing)."""

from __future__ import annotations

from ingestflow.chunks import read_chunks, store_metadata
from ingestflow.db import ChunkText, session_scope
from ingestflow.jobs.progress import StageProgress, cancelled_jobs
from ingestflow.models import embedding_model, embedding_model_name
from ingestflow.pipeline import EmbedResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from ingestflow.stores import lexical
from ingestflow.stores.vectors import DocumentVectors, chunk_id, open_vector_store
from tasks.common import stage_task

BATCH = 64


def embed_documents(refs: list[DocumentRef]) -> list[EmbedResult]:
    settings = get_settings()
    per_doc = [read_chunks(ref.chunks_json) for ref in refs]
    texts = [c.embed_text for chunks in per_doc for c in chunks]
    model = embedding_model(settings.embedding_model)
    progress = StageProgress([r.job_id for r in refs], "Embedding", len(texts), "chunks")
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        vectors += model.encode(batch, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True).tolist()
        progress.advance(len(vectors))
    progress.check_cancelled()  # last chance before anything is written
    cancelled = progress.cancelled()
    writes, rows, offset = [], [], 0
    for ref, chunks in zip(refs, per_doc, strict=True):
        if ref.job_id not in cancelled:
            metas = [store_metadata(ref, c) for c in chunks]
            ids = [chunk_id(ref.id, c.index) for c in chunks]
            writes.append(DocumentVectors(ref.owner_id, ref.id, ids, vectors[offset : offset + len(chunks)],
                                          [c.text for c in chunks], metas))
            rows += [ChunkText(id=i, owner_id=ref.owner_id, document_id=ref.id, chunk_index=c.index, kind=ref.kind,
                               collection=ref.collection, text=c.text, meta=dict(m))
                     for i, c, m in zip(ids, chunks, metas, strict=True)]
        offset += len(chunks)
    store = open_vector_store(settings)
    store.replace_documents(writes)
    with session_scope(settings.sqlalchemy_url) as db:
        lexical.replace_chunks(db, [w.document_id for w in writes], rows)
    # A DELETE cancels the job before it purges: one that landed while we wrote finds our vectors gone or
    # is seen here, and what we wrote for it is taken back.
    gone = cancelled_jobs([r.job_id for r in refs])
    for ref in refs:
        if ref.job_id in gone:
            store.delete_documents(ref.owner_id, [ref.id])
            lexical.delete_document(settings.sqlalchemy_url, ref.id)
    name = embedding_model_name(settings.embedding_model)
    return [EmbedResult(vector_count=len(chunks), model=name, units=len(chunks)) for chunks in per_doc]


@stage_task("embed")
def embed(refs: list[DocumentRef]) -> list[EmbedResult]:
    """Vectors for every chunk of these documents, replacing each document's vectors in Chroma."""
    return embed_documents(refs)
