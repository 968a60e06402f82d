"""API keys: random tokens shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingestflow.db import ApiKey, User

PREFIX = "ifk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Session, user_name: str, key: str | None = None) -> tuple[User, str]:
    """Create (or reuse) the named user and give it a new key; `key` lets start-up install a known one."""
    user = db.scalar(select(User).where(User.name == user_name))
    if user is None:
        user = User(name=user_name)
        db.add(user)
        db.flush()
    key = key or PREFIX + secrets.token_urlsafe(32)
    if db.get(ApiKey, hash_key(key)) is None:
        db.add(ApiKey(key_hash=hash_key(key), user_id=user.id))
    return user, key


def user_for_key(db: Session, key: str) -> User | None:
    row = db.get(ApiKey, hash_key(key))
    return db.get(User, row.user_id) if row else None
