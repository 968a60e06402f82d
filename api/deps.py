"""Request dependencies: settings, a database session, the calling user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.schemas import Page
from ingestflow.auth import user_for_key
from ingestflow.db import User, session_scope
from ingestflow.settings import Settings, get_settings

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.sqlalchemy_url) as db:
        yield db


SessionDep = Annotated[Session, Depends(get_db)]
_bearer = HTTPBearer(auto_error=False)


def current_user(
    settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    if creds is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key: send 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    # Its own read-only transaction: SQLite write transactions take the write lock up front (ingestflow.db),
    # so the request's session must not begin before the request actually needs it.
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        user = user_for_key(db, creds.credentials)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(current_user)]


class Pagination:
    def __init__(self, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0)] = 0) -> None:
        self.limit, self.offset = limit, offset

    def page(self, db: Session, query: Select[Any], order: Any, render: Callable[[Any], Any]) -> Page:
        total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = db.scalars(query.order_by(order).limit(self.limit).offset(self.offset))
        return Page(items=[render(r) for r in rows], total=total, limit=self.limit, offset=self.offset)


PageDep = Annotated[Pagination, Depends()]
