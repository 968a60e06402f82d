"""GET /v1/entities, GET /v1/entities/{id}: the caller's entities, where they are mentioned, what they relate to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from sqlalchemy import select

from api import errors
from api.deps import NO_NUL, CurrentUser, IdPath, SettingsDep
from ingestflow.db import Document, session_scope
from ingestflow.settings import Settings
from ingestflow.stores.graph import GraphStore, open_graph_store
from ingestflow.stores.graph.base import EntitySummary, Mention, Related

router = APIRouter(prefix="/v1/entities", tags=["entities"], responses=errors.documented(401, 503))


class EntityList(BaseModel):
    query: str | None
    entities: list[EntitySummary]


@dataclass(frozen=True)
class MentionOut(Mention):
    """A mention as the graph holds it, with its document's title and kind from the database."""
    title: str
    kind: str | None


class EntityDetailOut(BaseModel):
    id: str
    name: str
    label: str
    mention_count: int
    mentions: list[MentionOut]
    related: list[Related]


@contextmanager
def graph_reader(settings: Settings) -> Iterator[GraphStore]:
    # LadybugDB read-only opens are snapshots: one per request sees the latest committed graph.
    # Busy or unreachable (a Ladybug checkpoint, a Neo4j hiccup) is worth a retry: 503, not 500.
    store = open_graph_store(settings, read_only=True)
    try:
        yield store
    finally:
        store.close()


@router.get("", response_model=EntityList)
def list_entities(
    user: CurrentUser,
    settings: SettingsDep,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL,
                                   description="part of the name, case-insensitive")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EntityList:
    with graph_reader(settings) as store:
        found = store.find_entities(user.id, q, limit)
    return EntityList(query=q, entities=found)


@router.get("/{entity_id}", response_model=EntityDetailOut, responses=errors.documented(404))
def get_entity(entity_id: IdPath, user: CurrentUser, settings: SettingsDep) -> EntityDetailOut:
    with graph_reader(settings) as store:
        detail = store.get_entity(user.id, entity_id)
    if detail is None:
        # A foreign entity answers exactly like a missing one.
        raise HTTPException(status.HTTP_404_NOT_FOUND, "entity not found")
    doc_ids = sorted({m.document_id for m in detail.mentions})
    with session_scope(settings.sqlalchemy_url) as db:
        rows = db.execute(
            select(Document.id, Document.title, Document.kind).where(
                Document.owner_id == user.id, Document.id.in_(doc_ids)
            )
        ).all()
    docs = {r.id: (r.title, r.kind) for r in rows}
    mentions = [
        MentionOut(**asdict(m), title=docs[m.document_id][0], kind=docs[m.document_id][1])
        # A document deleted while its graph facts are being removed is not shown half-gone.
        for m in detail.mentions
        if m.document_id in docs
    ]
    return EntityDetailOut(
        id=detail.id, name=detail.name, label=detail.label, mention_count=sum(m.count for m in mentions),
        mentions=mentions, related=detail.related,
    )
