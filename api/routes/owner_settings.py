"""GET and PUT /v1/settings: the owner's policy for uploads (redact them all, and
whether the unredacted text is kept for the owner alone)."""

from __future__ import annotations

from fastapi import APIRouter

from api import errors
from api.deps import CurrentUser, SessionDep
from api.schemas import OwnerSettings

router = APIRouter(prefix="/v1/settings", tags=["settings"], responses=errors.documented(401))


@router.get("", response_model=OwnerSettings)
def read_settings(user: CurrentUser) -> OwnerSettings:
    return OwnerSettings.model_validate(user)


@router.put("", response_model=OwnerSettings, responses=errors.documented(400))
def write_settings(body: OwnerSettings, db: SessionDep, user: CurrentUser) -> OwnerSettings:
    """Applies to later uploads; a document keeps the setting it was uploaded with."""
    user.redact_by_default, user.keep_original = body.redact_by_default, body.keep_original
    db.commit()
    return OwnerSettings.model_validate(user)
