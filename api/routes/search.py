"""GET /v1/search: the caller's chunks only, ranked by meaning and by words together, optionally through the graph."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from api import errors
from api.deps import NO_NUL, CurrentUser, IsoDateOrDateTime, QueryBudget, SettingsDep
from ingestflow.answering.retrieval import Mode, QueryEntity, retrieve
from ingestflow.answering.search import Hit, SearchFilters, as_utc

router = APIRouter(prefix="/v1", tags=["search"], responses=errors.documented(401))


class SearchResult(BaseModel):
    query: str
    expand: Literal["none", "graph"]
    mode: Literal["hybrid", "vector", "lexical"]
    hits: list[Hit]
    # Graph expansion only: the entities found in the query and the related ones that were followed.
    query_entities: list[QueryEntity] = []
    notes: list[str] = []


def time_range(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """Query bounds as UTC datetimes: a bare date starts at its midnight, or as `until` ends at its last instant."""

    def bound(value: date | None, end: bool) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return None if value is None else as_utc(value)
        midnight = datetime.combine(value, time.min, tzinfo=UTC)
        return midnight + timedelta(days=1) - timedelta(microseconds=1) if end else midnight

    return bound(since, False), bound(until, True)


@router.get("/search", response_model=SearchResult, responses=errors.documented(429, 503))
def search(
    user: CurrentUser,
    settings: SettingsDep,
    _budget: QueryBudget,
    q: Annotated[str, Query(min_length=1, max_length=2000, pattern=NO_NUL)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    kind: Literal["text", "audio"] | None = None,
    document_id: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    collection: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    # date before datetime: a bare date must stay a date, so that `until=2025-03-14` takes in all of that day.
    since: Annotated[IsoDateOrDateTime | None, Query(description="uploaded at or after (ISO 8601 date or time; UTC "
                                                               "if no zone)")] = None,
    until: Annotated[IsoDateOrDateTime | None, Query(description="uploaded at or before (a date: to its end)")] = None,
    expand: Annotated[Literal["none", "graph"], Query(description="graph: follow entities named in the query")]
    = "none",
    mode: Annotated[Mode, Query(description="hybrid: by meaning and by words together; or either alone")] = "hybrid",
    rerank: Annotated[bool, Query(description="reorder the top hits with the configured cross-encoder, if any")]
    = True,
) -> SearchResult:
    # A sync endpoint (FastAPI runs it in a thread): the model, Chroma and the graph are blocking calls.
    start, end = time_range(since, until)
    if start is not None and end is not None and start > end:
        # In the shape of every other 422 (FastAPI's validation errors), as the schema documents it.
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "since"), "msg": "since is after until",
                                       "input": str(since)}])
    filters = SearchFilters(kind=kind, document_id=document_id, collection=collection, since=start, until=end)
    result = retrieve(settings, user.id, q, k, filters, expand, mode, rerank=rerank)
    return SearchResult(
        query=q,
        expand=expand,
        mode=mode,
        hits=[Hit.of(h) for h in result.hits],
        query_entities=result.entities,
        notes=result.notes,
    )
