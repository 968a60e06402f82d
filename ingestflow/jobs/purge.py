"""Removing a document's derived facts from the vector, lexical and graph stores (rows and files are the caller's).

The owner's vector collection goes with their last document: nothing of theirs is left to search, and a
store of many owners does not keep empty collections of those who left.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ingestflow.db import Document, session_scope
from ingestflow.settings import Settings
from ingestflow.stores import lexical
from ingestflow.stores.graph import writing
from ingestflow.stores.vectors import open_vector_store

# A DELETE answers 503 with Retry-After rather than hold the request while a batch writes the graph.
PURGE_LOCK_WAIT_S = 10.0


@dataclass(frozen=True)
class Purged:
    """What went from each store (for the audit of removals)."""

    vectors: int
    lexical_rows: int
    graph: bool = True  # the document's node, its chunks and the facts only it held


def purge_document(settings: Settings, owner_id: str, document_id: str) -> Purged:
    store = open_vector_store(settings)
    vectors = store.count(owner_id, document_id)
    store.delete_documents(owner_id, [document_id])
    rows = lexical.delete_document(settings.sqlalchemy_url, document_id)
    with session_scope(settings.sqlalchemy_url) as db:
        others = db.scalar(select(func.count()).select_from(Document)
                           .where(Document.owner_id == owner_id, Document.id != document_id)) or 0
    if others == 0:
        store.drop_owner(owner_id)
    with writing(settings, timeout_s=PURGE_LOCK_WAIT_S) as graph:
        graph.delete_document(owner_id, document_id)
    return Purged(vectors=vectors, lexical_rows=rows)
