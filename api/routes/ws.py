"""Live job status over WebSockets: an update on every change and at least once a second while running.

Browsers cannot set headers on a WebSocket, so the key may also come as `?token=`. A caller without a
valid key, or asking for someone else's job, is refused before the handshake completes (HTTP 403). The key is
checked again on every pass, so a socket whose key is revoked or expires closes (1008) within a second or so.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from prefect.client.orchestration import PrefectClient, get_client
from sqlalchemy import or_, select

from api.deps import IdPath, SettingsDep, caller_of
from api.routes.jobs import PREFECT_READ_TIMEOUT_S
from ingestflow.auth import caller_for_key
from ingestflow.db import Job, JobStatus, session_scope, utcnow
from ingestflow.jobs.jobview import base_view, live_view
from ingestflow.settings import Settings

router = APIRouter(tags=["live"])
POLL_S = 0.5
HEARTBEAT_S = 1.0


REVOKED = "API key revoked or expired"


def socket_key(ws: WebSocket) -> str:
    key = ws.query_params.get("token")
    auth = ws.headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key or ""


async def _user_id(settings: Settings, key: str) -> str | None:
    caller = await asyncio.to_thread(caller_of, settings, key) if key else None
    return caller.owner.id if caller else None


def key_still_valid(settings: Settings, key: str) -> bool:
    """Asked of the database itself on every pass (not the key cache, which may trust a key a second longer):
    an open socket stops within one pass of its key's revocation or expiry."""
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        return caller_for_key(db, key) is not None


def _job(settings: Settings, job_id: str) -> Job | None:
    with session_scope(settings.sqlalchemy_url) as db:
        return db.get(Job, job_id)


def _jobs_to_watch(settings: Settings, owner_id: str) -> list[Job]:
    recent = utcnow() - timedelta(minutes=10)
    with session_scope(settings.sqlalchemy_url) as db:
        return list(db.scalars(
            select(Job)
            .where(Job.owner_id == owner_id, or_(Job.finished_at.is_(None), Job.finished_at >= recent))
            .order_by(Job.created_at.desc())
            .limit(200)
        ))


async def _view(job: Job, settings: Settings, client: PrefectClient) -> dict[str, Any]:
    if JobStatus(job.status) == JobStatus.queued and not job.flow_run_id:
        return base_view(job, settings).model_dump(mode="json")  # nothing in Prefect yet: spare the server a read
    try:
        view = await asyncio.wait_for(live_view(job, settings, client), timeout=PREFECT_READ_TIMEOUT_S)
    except Exception:  # Prefect away for a moment: the database's view still moves the page on
        view = base_view(job, settings)
    return view.model_dump(mode="json")


@router.websocket("/v1/ws/jobs/{job_id}")
async def ws_job(ws: WebSocket, job_id: IdPath, settings: SettingsDep) -> None:
    key = socket_key(ws)
    user_id = await _user_id(settings, key)
    job = await asyncio.to_thread(_job, settings, job_id)
    if user_id is None or job is None or job.owner_id != user_id:
        await ws.close(code=1008, reason="unknown API key or job")
        return
    await ws.accept()
    last: dict[str, Any] | None = None
    sent_at = 0.0
    try:
        async with get_client() as client:
            while True:
                if not await asyncio.to_thread(key_still_valid, settings, key):
                    await ws.close(code=1008, reason=REVOKED)
                    return
                job = await asyncio.to_thread(_job, settings, job_id)
                if job is None:
                    await ws.send_json({"type": "deleted", "job_id": job_id})
                    break
                view = await _view(job, settings, client)
                if view != last or time.monotonic() - sent_at >= HEARTBEAT_S:
                    await ws.send_json({"type": "job", "job": view})
                    last, sent_at = view, time.monotonic()
                if JobStatus(view["status"]).terminal:
                    break
                await asyncio.sleep(POLL_S)
        await ws.close()
    except WebSocketDisconnect:
        pass


@router.websocket("/v1/ws/jobs")
async def ws_jobs(ws: WebSocket, settings: SettingsDep) -> None:
    key = socket_key(ws)
    user_id = await _user_id(settings, key)
    if user_id is None:
        await ws.close(code=1008, reason="unknown API key")
        return
    await ws.accept()
    last: dict[str, dict[str, Any]] = {}
    sent_at: dict[str, float] = {}
    try:
        async with get_client() as client:
            while True:
                tick = time.monotonic()
                if not await asyncio.to_thread(key_still_valid, settings, key):
                    await ws.close(code=1008, reason=REVOKED)
                    return
                for job in await asyncio.to_thread(_jobs_to_watch, settings, user_id):
                    previous = last.get(job.id)
                    if previous and JobStatus(previous["status"]).terminal and JobStatus(job.status).terminal:
                        continue  # its end was already sent
                    view = await _view(job, settings, client)
                    running = not JobStatus(view["status"]).terminal
                    stale = running and time.monotonic() - sent_at.get(job.id, 0.0) >= HEARTBEAT_S
                    if view != previous or stale:
                        await ws.send_json({"type": "job", "job": view})
                        last[job.id], sent_at[job.id] = view, time.monotonic()
                # One pass a second whatever the number of jobs: each pass reads Prefect for every running job.
                await asyncio.sleep(max(0.1, HEARTBEAT_S - (time.monotonic() - tick)))
    except WebSocketDisconnect:
        pass
