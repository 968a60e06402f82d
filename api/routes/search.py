"""GET /v1/search: the caller's chunks only, ranked by cosine similarity."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import CurrentUser, SettingsDep
from api.schemas import SearchHit, SearchResponse
from ingestflow.errors import TransientError
from ingestflow.search import search_chunks

router = APIRouter(prefix="/v1", tags=["search"])


@router.get("/search", response_model=SearchResponse)
def search(
    user: CurrentUser,
    settings: SettingsDep,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    kind: Literal["text", "audio"] | None = None,
    document_id: str | None = None,
    collection: str | None = None,
) -> SearchResponse:
    filters = {"kind": kind, "document_id": document_id, "collection": collection}
    try:
        hits = search_chunks(settings, user.id, q, k, filters)
    except TransientError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message) from exc
    return SearchResponse(
        query=q,
        hits=[
            SearchHit(
                chunk_id=h.chunk_id,
                document_id=h.document_id,
                title=str(h.metadata.get("title", "")),
                kind=str(h.metadata.get("kind", "text")),
                text=h.text,
                score=round(h.score, 4),
                page=h.metadata.get("page_start"),
                page_end=h.metadata.get("page_end"),
                headings=[p for p in str(h.metadata.get("headings", "")).split(" > ") if p],
                start_s=h.metadata.get("start_s"),
                end_s=h.metadata.get("end_s"),
            )
            for h in hits
        ],
    )
