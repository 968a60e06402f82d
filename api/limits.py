"""Hostile clients: per-key request budgets, a per-owner quota of stored bytes, and a timeout for stalled bodies.

Budgets are token buckets: a key's owner may send `burst` requests at once, then `rate` per second; past that it
gets 429 with Retry-After (the seconds until its next token). The buckets are rows of PostgreSQL (`rate_buckets`,
revision 0010), spent by one upsert, so every API process and replica draws on the same bucket: the API can
run several processes (`api_workers`) and replicas, and buckets in each process's memory allowed N times the rate.

A query's upsert runs on its own autocommit connection, so PostgreSQL releases the bucket's row when the statement
ends (in a request's transaction, committed by a second round trip, every request of a key would wait for the
row while the holding thread waited for the GIL to send COMMIT). Uploads are spent by the group they are written
with (api/intake.py): one upsert for all of an owner's uploads in the group, in its transaction.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingestflow.db import Document, User, get_engine
from ingestflow.settings import get_settings

# The tokens a bucket holds now: what it held, plus the refill since it was last spent, at most a full burst.
# statement_timestamp() is one instant for the whole statement; a statement that waited for the row's lock behind
# a later one sees a stamp after its own instant, hence GREATEST(0, ...).
_REFILLED = "LEAST(:burst, b.tokens + :rate * GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.stamp)))"
_GRANTED = f"LEAST(:n, FLOOR({_REFILLED}))::integer"
_SPEND = text(f"""
    INSERT INTO rate_buckets AS b (budget, caller, tokens, stamp, granted)
    VALUES (:budget, :caller, :burst - LEAST(:n, :burst), statement_timestamp(), LEAST(:n, :burst)::integer)
    ON CONFLICT (budget, caller) DO UPDATE SET
        tokens = {_REFILLED} - {_GRANTED},
        granted = {_GRANTED},
        stamp = GREATEST(b.stamp, statement_timestamp())
    RETURNING tokens, granted
""")


def take(conn: Connection | Session, budget: str, caller: str, rate: float, burst: int,
         n: int = 1) -> tuple[int, float]:
    """Spend up to `n` of the caller's tokens: how many it had (the first that many requests go ahead), and the
    seconds until it has one again (0.0 while it still has one)."""
    tokens, granted = conn.execute(_SPEND, {"budget": budget, "caller": caller, "rate": rate, "burst": float(burst),
                                            "n": n}).one()
    return int(granted), max(0.0, 1.0 - tokens) / rate


def refusal(what: str, rate: float, burst: int, wait_s: float) -> HTTPException:
    """429 with Retry-After: the seconds until the bucket holds a token again, and the reason."""
    retry_after = max(1, math.ceil(wait_s))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"rate limit for {what} exceeded for this API key ({burst} at once, then {rate:g} per second); "
        f"retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


def spend(url: str, budget: str, what: str, caller: str, rate: float, burst: int) -> None:
    """One request of `caller` against a budget; 429 with Retry-After and the reason when it is spent."""
    if rate <= 0:
        return
    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        granted, wait_s = take(conn, budget, caller, rate, burst)
    if not granted:
        raise refusal(what, rate, burst, wait_s)


def quota_refusal(used: int, size: int, quota: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"storage quota exceeded: this API key's documents hold {used} of its {quota} bytes, and this upload of "
        f"{size} bytes does not fit; delete documents to make room",
    )


def lock_stored_bytes(db: Session, owner_ids: list[str]) -> dict[str, int]:
    """Within an upload group's write transaction: lock the owners' rows until the commit (so parallel uploads of
    one owner count each other, one after the other; in id order, so two groups wait rather than deadlock) and
    count the bytes each one's documents hold."""
    db.execute(select(User.id).where(User.id.in_(owner_ids)).order_by(User.id).with_for_update())
    used = dict.fromkeys(owner_ids, 0)
    used.update((owner, int(total)) for owner, total in db.execute(
        select(Document.owner_id, func.sum(Document.size_bytes)).where(Document.owner_id.in_(owner_ids))
        .group_by(Document.owner_id)))
    return used


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
