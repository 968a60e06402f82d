"""Graph stores behind one contract (base.GraphStore); backends are imported only when chosen,
so a Neo4j deployment never loads LadybugDB's native library and vice versa."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingestflow.graph.base import GraphStore

if TYPE_CHECKING:
    from ingestflow.settings import Settings

__all__ = ["GraphStore", "open_graph_store"]


def open_graph_store(settings: Settings, read_only: bool = False) -> GraphStore:
    """Open the configured store. Ladybug: read_only opens are snapshots and may sit beside the one
    read-write process; a second read-write process gets TransientError. Neo4j ignores read_only."""
    if settings.graph_backend == "ladybug":
        from ingestflow.graph.ladybug_store import LadybugGraphStore

        return LadybugGraphStore(settings.graph_path, read_only=read_only)
    if settings.graph_backend == "neo4j":
        if not settings.neo4j_uri:
            raise ValueError("graph_backend is neo4j but INGESTFLOW_NEO4J_URI is not set")
        from ingestflow.graph.neo4j_store import Neo4jGraphStore

        return Neo4jGraphStore(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password)
    raise ValueError(f"unknown graph backend {settings.graph_backend!r}")
