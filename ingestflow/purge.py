"""Removing a document's derived facts from the vector and graph stores (rows and files are the caller's)."""

from __future__ import annotations

from prefect.concurrency.sync import concurrency

from deployments.names import GRAPH_WRITER_LIMIT
from ingestflow.graph import open_graph_store
from ingestflow.settings import Settings
from ingestflow.vectors import open_vector_store


# LadybugDB allows one read-write process per database: the graph-writer global concurrency limit
# (one slot, made by the bootstrap) serialises writers across flow runs, Dask workers and the API.
def purge_document(settings: Settings, owner_id: str, document_id: str) -> None:
    open_vector_store(settings).delete_document(document_id)
    with concurrency(GRAPH_WRITER_LIMIT, occupy=1, lease_duration=120, timeout_seconds=60):
        store = open_graph_store(settings)
        try:
            store.delete_document(owner_id, document_id)
        finally:
            store.close()
