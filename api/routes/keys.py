"""The owner's API keys: list them, make another (shown once), revoke one. A revoked or expired key is refused
within `key_cache_s` (a second) on every API process, REST and WebSockets alike, and a revocation is audited."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Response, status

from api import errors
from api.deps import CurrentCaller, IdPath, SessionDep
from api.schemas import KeyCreated, KeyIn, KeyOut
from ingestflow import auth
from ingestflow.db import utcnow

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=errors.documented(401))


@router.get("", response_model=list[KeyOut])
def list_keys(db: SessionDep, caller: CurrentCaller) -> list[KeyOut]:
    """Every key of the owner, oldest first, revoked and expired ones included."""
    return [KeyOut.model_validate(k).model_copy(update={"current": k.id == caller.key_id})
            for k in auth.owner_keys(db, caller.owner.id)]


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED, responses=errors.documented(400))
def create_key(body: KeyIn, db: SessionDep, caller: CurrentCaller) -> KeyCreated:
    """Another key for the same owner (to rotate: make one, move to it, revoke the old one)."""
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, key = auth.add_key(db, caller.owner.id, label=body.label, expires_at=expires)
    db.commit()
    return KeyCreated(**KeyOut.model_validate(row).model_dump(), key=key)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors.documented(404))
def revoke_key(key_id: IdPath, db: SessionDep, caller: CurrentCaller) -> Response:
    """Refused from now on (within a second on every API process); the key this request uses may be revoked too."""
    auth.revoke(db, caller.owner.id, key_id, caller.key_id)
    db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
