"""API keys: random tokens shown once; only their SHA-256 is stored. An owner lists its keys, may give one an
expiry, and revokes one (audited); a revoked or expired key is refused within `key_cache_s` on every process."""

from __future__ import annotations

import enum
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingestflow.db import ApiKey, AuditAction, AuditRecord, User, utcnow
from ingestflow.errors import NotFound

PREFIX = "ifk_"
SHOWN = 8  # characters of a key kept to tell keys apart in lists ("ifk_AbCd"); far too few to guess the rest


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Session, user_name: str, key: str | None = None, *, label: str | None = None,
               expires_at: datetime | None = None) -> tuple[User, str]:
    """Create (or reuse) the named user and give it a new key; `key` lets start-up install a known one."""
    user = db.scalar(select(User).where(User.name == user_name))
    if user is None:
        user = User(name=user_name)
        db.add(user)
        db.flush()
    return user, add_key(db, user.id, key, label=label, expires_at=expires_at)[1]


def add_key(db: Session, owner_id: str, key: str | None = None, *, label: str | None = None,
            expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key of the owner (the same row again if `key` is already installed); returns the row and the key."""
    key = key or PREFIX + secrets.token_urlsafe(32)
    row = db.get(ApiKey, hash_key(key))
    if row is None:
        row = ApiKey(key_hash=hash_key(key), user_id=owner_id, label=label, prefix=key[:SHOWN], expires_at=expires_at)
        db.add(row)
        db.flush()
    return row, key


@dataclass(frozen=True)
class Owner:
    """Whose a request is: what every route needs of its caller. Not the `users` row: a cached row belongs to no
    session and may be a second old, so what the owner sets (PUT /v1/settings) is read from the row itself."""

    id: str
    name: str


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the key's owner, which key, and until when it holds."""

    owner: Owner
    key_id: str
    expires_at: datetime | None

    def valid(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


def caller_for_key(db: Session, key: str) -> Caller | None:
    """The key's caller; None for an unknown, revoked or expired key."""
    found = db.execute(select(ApiKey, User).join(User, User.id == ApiKey.user_id)
                       .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))).tuples().first()
    if found is None:
        return None
    row, user = found
    caller = Caller(Owner(user.id, user.name), row.id, row.expires_at)
    return caller if caller.valid(utcnow()) else None


def user_for_key(db: Session, key: str) -> User | None:
    caller = caller_for_key(db, key)
    return db.get(User, caller.owner.id) if caller else None


def owner_keys(db: Session, owner_id: str) -> list[ApiKey]:
    return list(db.scalars(select(ApiKey).where(ApiKey.user_id == owner_id).order_by(ApiKey.created_at)))


def revoke(db: Session, owner_id: str, key_id: str, by_key_id: str | None) -> ApiKey:
    """Revokes one of the owner's keys, audited once (revoking again changes nothing)."""
    row = db.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == owner_id))
    if row is None:
        raise NotFound("API key", key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        actor = "this key itself" if by_key_id == row.id else f"key {by_key_id}" if by_key_id else "the operator"
        db.add(AuditRecord(owner_id=owner_id, action=AuditAction.key_revoked, key_id=row.id, actor=actor,
                           title=f"API key {row.prefix}…" + (f" ({row.label})" if row.label else ""),
                           removed={"key": "revoked: refused from now on"}))
    return row


@dataclass
class _Lookup:
    """One database lookup of a key that other threads wait on rather than repeat."""

    done: threading.Event = field(default_factory=threading.Event)
    caller: Caller | None = None
    error: BaseException | None = None


class _Miss(enum.Enum):
    MISS = "miss"


MISS = _Miss.MISS  # KeyCache.cached: no fresh entry for the key


class KeyCache:
    """Each key's caller for `ttl_s` (a second), so a burst spends one database round trip per key on who is
    calling rather than one per request (under 100 concurrent uploads, authentication was a third of the API's
    database work). When the entry runs out, one thread looks the key up and the others that miss meanwhile wait
    for its answer: each of an API process's 40 threads repeating the lookup at the same moment was 10% of its
    samples under 100 concurrent uploads. A revoked key is refused within `ttl_s` on every process, an expired one
    at once (its expiry is kept with it); unknown keys are not cached, so a new key works at once."""

    def __init__(self, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self._ttl_s, self._max = ttl_s, max_entries
        self._lock = threading.Lock()
        self._callers: dict[str, tuple[float, Caller]] = {}
        self._lookups: dict[str, _Lookup] = {}

    def cached(self, key: str) -> Caller | None | _Miss:
        """The key's caller (None: expired) while its entry is fresh, without waiting or a lookup; else MISS."""
        with self._lock:
            return self._fresh(hash_key(key))

    def _fresh(self, digest: str) -> Caller | None | _Miss:
        hit = self._callers.get(digest)
        if hit and time.monotonic() - hit[0] < self._ttl_s:
            return hit[1] if hit[1].valid(utcnow()) else None
        return MISS

    def caller(self, db_session: Callable[[], AbstractContextManager[Session]], key: str) -> Caller | None:
        digest, now = hash_key(key), time.monotonic()  # the entry's stamp: a lookup's answer is as old as its start
        with self._lock:
            fresh = self._fresh(digest)
            if fresh is not MISS:
                return fresh
            lookup = self._lookups.get(digest)
            leading = lookup is None
            if lookup is None:
                lookup = self._lookups[digest] = _Lookup()
        if not leading:
            lookup.done.wait()
            if lookup.error is not None:
                raise lookup.error
            return lookup.caller if lookup.caller is None or lookup.caller.valid(utcnow()) else None
        try:
            with db_session() as db:
                lookup.caller = caller_for_key(db, key)
        except BaseException as exc:
            lookup.error = exc
            raise
        finally:
            with self._lock:
                del self._lookups[digest]
                if lookup.caller is None:
                    self._callers.pop(digest, None)
                else:
                    if len(self._callers) >= self._max:
                        self._callers.clear()
                    self._callers[digest] = (now, lookup.caller)
            lookup.done.set()
        return lookup.caller
