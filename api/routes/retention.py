"""GET and PUT /v1/retention: the owner's retention rules (applied by the `retention` deployment), and
GET /v1/audit: the record of every removal of the owner's documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import delete, select

from api import errors
from api.deps import NO_NUL, CurrentUser, IsoDateTime, PageDep, SessionDep
from api.schemas import AuditOut, Page, RetentionPolicies, RetentionRule
from ingestflow.db import AuditAction, AuditRecord, RetentionPolicy

router = APIRouter(prefix="/v1", tags=["retention"], responses=errors.documented(401))


def _rules(db: SessionDep, owner_id: str) -> RetentionPolicies:
    found = list(db.scalars(select(RetentionPolicy).where(RetentionPolicy.owner_id == owner_id)
                            .order_by(RetentionPolicy.collection)))
    default = next((RetentionRule.model_validate(p) for p in found if p.collection is None), None)
    return RetentionPolicies(default=default, collections={
        p.collection: RetentionRule.model_validate(p) for p in found if p.collection is not None})


@router.get("/retention", response_model=RetentionPolicies)
def read_retention(db: SessionDep, user: CurrentUser) -> RetentionPolicies:
    return _rules(db, user.id)


@router.put("/retention", response_model=RetentionPolicies, responses=errors.documented(400))
def write_retention(body: RetentionPolicies, db: SessionDep, user: CurrentUser) -> RetentionPolicies:
    """Replaces the owner's rules; the next pass of the `retention` deployment applies them."""
    db.execute(delete(RetentionPolicy).where(RetentionPolicy.owner_id == user.id))
    for collection, rule in [(None, body.default), *body.collections.items()]:
        if rule is not None:
            db.add(RetentionPolicy(owner_id=user.id, collection=collection, days=rule.days, action=rule.action))
    db.commit()
    return _rules(db, user.id)


@router.get("/audit", response_model=Page[AuditOut])
def list_audit(
    db: SessionDep,
    user: CurrentUser,
    pages: PageDep,
    action: AuditAction | None = None,
    document_id: Annotated[str | None, Query(max_length=32, pattern=NO_NUL)] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
) -> Page[AuditOut]:
    """Every removal of the owner's documents, newest first (never removed by retention)."""
    query = select(AuditRecord).where(AuditRecord.owner_id == user.id)
    if action:
        query = query.where(AuditRecord.action == action)
    if document_id:
        query = query.where(AuditRecord.document_id == document_id)
    if since:
        query = query.where(AuditRecord.at >= since)
    if until:
        query = query.where(AuditRecord.at <= until)
    return pages.page(db, query, AuditRecord.at.desc(), AuditOut.model_validate)
