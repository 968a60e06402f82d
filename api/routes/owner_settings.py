"""GET and PUT /v1/settings: the owner's policy for uploads (redact them all, and
whether the unredacted text is kept for the owner alone)."""

from __future__ import annotations

from fastapi import APIRouter

from api import errors
from api.deps import CurrentUser, SessionDep
from api.schemas import OwnerSettings
from ingestflow.auth import Owner
from ingestflow.db import User
from ingestflow.errors import NotFound

router = APIRouter(prefix="/v1/settings", tags=["settings"], responses=errors.documented(401))


def owner_row(db: SessionDep, user: Owner) -> User:
    """The caller's own row in this request's session (what the owner set, as it is now)."""
    owner = db.get(User, user.id)
    if owner is None:
        raise NotFound("user", user.id)
    return owner


@router.get("", response_model=OwnerSettings)
def read_settings(db: SessionDep, user: CurrentUser) -> OwnerSettings:
    return OwnerSettings.model_validate(owner_row(db, user))


@router.put("", response_model=OwnerSettings, responses=errors.documented(400))
def write_settings(body: OwnerSettings, db: SessionDep, user: CurrentUser) -> OwnerSettings:
    """Applies to later uploads; a document keeps the setting it was uploaded with."""
    owner = owner_row(db, user)
    owner.redact_by_default, owner.keep_original = body.redact_by_default, body.keep_original
    db.commit()
    return OwnerSettings.model_validate(owner)
