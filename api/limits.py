"""Hostile clients: per-key request budgets, a per-owner quota of stored bytes, and a timeout for stalled bodies.

Budgets are token buckets in this process's memory: a key may send `burst` requests at once, then `rate` per
second; past that it gets 429 with Retry-After (the seconds until its next token). Being per process, N API
replicas allow N times the rate: the limit guards each process against one key hogging it, it is not billing.
A PostgreSQL-backed limiter would be exact across replicas but would add a write per request to the hot path
(a 200-upload burst from one key is this project's own benchmark), and the `limits` package's memory storage
is per process too, with windows rather than a burst and a rate.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingestflow.db import Document, User
from ingestflow.settings import get_settings


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    full_at: float  # when it will have refilled completely, i.e. be no different from no bucket at all


class TokenBuckets:
    """One bucket per (budget, caller); thread-safe (sync routes and dependencies run in a thread pool)."""

    PRUNE_ABOVE = 10_000  # callers are authenticated users, so this only bounds memory after many of them

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, budget: str, caller: str, rate: float, burst: int) -> float:
        """Spend one token: 0.0 if there was one, else the seconds until there will be (nothing is spent)."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((budget, caller))
            if bucket is None:
                if len(self._buckets) >= self.PRUNE_ABOVE:
                    self._prune(now)
                bucket = self._buckets[(budget, caller)] = _Bucket(tokens=float(burst), stamp=now, full_at=now)
            else:
                bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
                bucket.stamp = now
            wait = 0.0
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
            else:
                wait = (1.0 - bucket.tokens) / rate
            bucket.full_at = now + (burst - bucket.tokens) / rate
            return wait

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full_at <= now]:
            del self._buckets[key]


BUCKETS = TokenBuckets()


def spend(budget: str, what: str, caller: str, rate: float, burst: int) -> None:
    """One request of `caller` against a budget; 429 with Retry-After and the reason when it is spent."""
    if rate <= 0:
        return
    wait = BUCKETS.take(budget, caller, rate, burst)
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit for {what} exceeded for this API key ({burst} at once, then {rate:g} per second); "
            f"retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def stored_bytes(db: Session, owner_id: str) -> int:
    return int(db.scalar(select(func.coalesce(func.sum(Document.size_bytes), 0)).where(Document.owner_id == owner_id))
               or 0)


def quota_refusal(used: int, size: int, quota: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"storage quota exceeded: this API key's documents hold {used} of its {quota} bytes, and this upload of "
        f"{size} bytes does not fit; delete documents to make room",
    )


def reserve_quota(db: Session, owner_id: str, size: int, quota: int) -> None:
    """Within the upload's own write transaction: lock the owner's row (so parallel uploads of one owner count
    each other, one after the other) and refuse what would not fit. The lock is held until the commit."""
    db.execute(select(User.id).where(User.id == owner_id).with_for_update())
    used = stored_bytes(db, owner_id)
    if used + size > quota:
        raise quota_refusal(used, size, quota)


class BodyIdleTimeout:
    """Drops a request whose body stops arriving: after `body_idle_timeout_s` without a byte, the app sees the
    client as gone (so nothing of the request is stored) and the client, if still there, gets 408. Only the body
    is timed; once it is complete, waiting for a disconnect while a long response streams is left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timeout_s = get_settings().body_idle_timeout_s
        body_done = timed_out = started = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout_s)
            except TimeoutError:
                timed_out = body_done = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                # Whatever the app made of the missing body (a 400), the client is told what happened.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_json(send, status.HTTP_408_REQUEST_TIMEOUT,
                                     f"request body stalled for {timeout_s:g} s; nothing was stored")
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, timed_receive, guarded_send)


async def _send_json(send: Send, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
