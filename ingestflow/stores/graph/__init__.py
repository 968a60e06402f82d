"""Graph stores behind one contract (base.GraphStore); backends are imported only when chosen,
so a Neo4j deployment never loads LadybugDB's native library and vice versa."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ingestflow.errors import TransientError
from ingestflow.stores.graph.base import GraphStore

if TYPE_CHECKING:
    from ingestflow.settings import Settings

__all__ = ["GraphStore", "open_graph_store", "writing"]


def open_graph_store(settings: Settings, read_only: bool = False) -> GraphStore:
    """Open the configured store. Ladybug: read_only opens are snapshots and may sit beside the one
    read-write process; a second read-write process gets TransientError. Neo4j ignores read_only."""
    if settings.graph_backend == "ladybug":
        from ingestflow.stores.graph.ladybug_store import LadybugGraphStore

        return LadybugGraphStore(settings.graph_path, read_only=read_only)
    if settings.graph_backend == "neo4j":
        if not settings.neo4j_uri:
            raise ValueError("graph_backend is neo4j but INGESTFLOW_NEO4J_URI is not set")
        from ingestflow.stores.graph.neo4j_store import Neo4jGraphStore

        return Neo4jGraphStore(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password)
    raise ValueError(f"unknown graph backend {settings.graph_backend!r}")


def writer_lock_path(settings: Settings) -> Path:
    """The file every LadybugDB writer locks first (see `writing`)."""
    return settings.graph_path.with_name(settings.graph_path.name + ".writer.lock")


@contextmanager
def writing(settings: Settings, timeout_s: float = 600) -> Iterator[GraphStore]:
    """The store opened for writing. LadybugDB allows one read-write process per database, so writers from
    every Dask worker, flow process and the API take an exclusive lock on a file beside it first: a local lock,
    where the Prefect global concurrency limit used before cost several API calls and polls per write.
    Neo4j takes concurrent writers itself."""
    if settings.graph_backend != "ladybug":
        store = open_graph_store(settings)
        try:
            yield store
        finally:
            store.close()
        return
    lock_path = writer_lock_path(settings)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TransientError(f"graph store busy for {timeout_s:.0f}s") from None
                time.sleep(0.02)
        try:
            store = open_graph_store(settings)
            try:
                yield store
            finally:
                store.close()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
