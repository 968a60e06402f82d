"""Removing a document's derived facts from the vector and graph stores (rows and files are the caller's)."""

from __future__ import annotations

from ingestflow.graph import writing
from ingestflow.settings import Settings
from ingestflow.vectors import open_vector_store

# A DELETE answers 503 with Retry-After rather than hold the request while a batch writes the graph.
PURGE_LOCK_WAIT_S = 10.0


def purge_document(settings: Settings, owner_id: str, document_id: str) -> None:
    open_vector_store(settings).delete_document(document_id)
    with writing(settings, timeout_s=PURGE_LOCK_WAIT_S) as store:
        store.delete_document(owner_id, document_id)
