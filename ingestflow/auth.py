"""API keys: random tokens shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

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
    return db.scalar(select(User).join(ApiKey, ApiKey.user_id == User.id).where(ApiKey.key_hash == hash_key(key)))


class KeyCache:
    """Known keys' users for `ttl_s`, so a request spends no database round trip on who is calling (under 100
    concurrent uploads, authentication was a third of the API's database work). Keys are never revoked or
    reassigned, so a cached answer cannot go stale; unknown keys are not cached, so a new key works at once."""

    def __init__(self, ttl_s: float = 300.0, max_entries: int = 10_000) -> None:
        self._ttl_s, self._max = ttl_s, max_entries
        self._lock = threading.Lock()
        self._users: dict[str, tuple[float, User]] = {}

    def user(self, db_session: Callable[[], AbstractContextManager[Session]], key: str) -> User | None:
        digest, now = hash_key(key), time.monotonic()
        with self._lock:
            hit = self._users.get(digest)
        if hit and now - hit[0] < self._ttl_s:
            return hit[1]
        with db_session() as db:
            user = user_for_key(db, key)
        if user is not None:
            with self._lock:
                if len(self._users) >= self._max:
                    self._users.clear()
                self._users[digest] = (now, user)
        return user
