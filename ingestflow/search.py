"""Semantic search over one owner's chunks."""

from __future__ import annotations

from typing import Any

from ingestflow.models import embedding_model
from ingestflow.settings import Settings
from ingestflow.vectors import VectorHit, open_vector_store


def embed_query(settings: Settings, query: str) -> list[float]:
    model = embedding_model(settings.embedding_model)
    vector = model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
    return [float(x) for x in vector]


def search_chunks(
    settings: Settings, owner_id: str, query: str, k: int, filters: dict[str, Any] | None = None
) -> list[VectorHit]:
    store = open_vector_store(settings)
    return store.query(owner_id, embed_query(settings, query), k, filters)
