"""Request dependencies: settings, a database session, the calling user."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.limits import spend
from api.schemas import Page
from ingestflow.auth import MISS, Caller, KeyCache, Owner
from ingestflow.db import session_scope
from ingestflow.settings import Settings, get_settings

T = TypeVar("T")

# Dependencies that do no I/O are `async def`: FastAPI runs a sync one in its thread pool, a hop each (a queue, a
# thread's wake-up, a turn of the GIL and back). An upload went through seven.


async def settings_dep() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]

# PostgreSQL text cannot hold NUL (psycopg refuses it even as a query parameter: a 500), and a lone surrogate
# cannot be encoded at all: every free-text input declares this pattern, so such input is a 422 instead.
NO_NUL = r"^[^\x00]*$"
IdPath = Annotated[str, Path(pattern=NO_NUL)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.sqlalchemy_url) as db:
        yield db


# Ended (committed) before the response is sent: by default FastAPI ends a `yield` dependency after it, so a
# client told 204 for a DELETE could still read the document back (a CI run did), and a commit that failed
# would follow a success already answered.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
_bearer = HTTPBearer(auto_error=False)


@lru_cache
def _key_cache(ttl_s: float) -> KeyCache:
    return KeyCache(ttl_s)


def caller_of(settings: Settings, key: str) -> Caller | None:
    """The key's caller, or None for an unknown, revoked or expired key (REST and WebSockets alike)."""
    # A session of its own, not the request's: an async route that awaits Prefect or an LLM must not hold a
    # pooled connection idle in a transaction all that time.
    return _key_cache(settings.key_cache_s).caller(lambda: session_scope(settings.sqlalchemy_url, read_only=True),
                                                   key)


async def current_caller(
    settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    if creds is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key: send 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    # A key seen within the cache's second is answered here; only a lookup goes to the thread pool.
    cache = _key_cache(settings.key_cache_s)
    caller = cache.cached(creds.credentials)
    if caller is MISS:
        caller = await run_in_threadpool(caller_of, settings, creds.credentials)
    if caller is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown, revoked or expired API key",
                            headers={"WWW-Authenticate": "Bearer"})
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def current_user(caller: CurrentCaller) -> Owner:
    return caller.owner


CurrentUser = Annotated[Owner, Depends(current_user)]


# PostgreSQL's OFFSET is a bigint: a larger one is a 500 from the driver, not an empty page.
MAX_OFFSET = 2**62


class Pagination:
    def __init__(self, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> None:
        self.limit, self.offset = limit, offset

    def page(self, db: Session, query: Select[Any], order: Any, render: Callable[[Any], T]) -> Page[T]:
        total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = db.scalars(query.order_by(order).limit(self.limit).offset(self.offset))
        return Page[T](items=[render(r) for r in rows], total=total, limit=self.limit, offset=self.offset)


PageDep = Annotated[Pagination, Depends()]

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    # Pydantic would read `since=0.5` as Unix seconds; the schema promises ISO 8601 (format date / date-time).
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date or date-time, not a number")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_not_a_number)]
IsoDateOrDateTime = Annotated[date | datetime, BeforeValidator(_not_a_number)]


# Per-key request budgets (api/limits.py): queries (search, chat) here, uploads in the group they are written
# with (api/intake.py); the keys of one owner share them (a new key is no new budget). Sync: the budget's
# statement runs in the thread pool.
def query_budget(user: CurrentUser, settings: SettingsDep) -> None:
    spend(settings.sqlalchemy_url, "query", "queries (search and chat)", user.id, settings.query_rate_per_s,
          settings.query_burst)


QueryBudget = Annotated[None, Depends(query_budget)]
