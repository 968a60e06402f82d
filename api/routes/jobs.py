"""Jobs as read from Prefect (flow run + task runs), with the database as the fallback when Prefect is away."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, status
from prefect.client.orchestration import get_client
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import errors
from api.deps import NO_NUL, CurrentUser, IdPath, IsoDateTime, PageDep, SessionDep, SettingsDep
from api.schemas import Page
from ingestflow.auth import Owner
from ingestflow.db import Job, JobStatus, session_scope
from ingestflow.jobs import control, removal
from ingestflow.jobs.jobview import JobView, base_view, live_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=errors.documented(401))
PREFECT_READ_TIMEOUT_S = 15.0


@router.get("", response_model=Page[JobView])
def list_jobs(
    db: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    pages: PageDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: Annotated[str | None, Query(pattern=NO_NUL)] = None,
    since: IsoDateTime | None = None,
) -> Page[JobView]:
    query = select(Job).where(Job.owner_id == user.id)
    if status_:
        query = query.where(Job.status == status_)
    if kind:
        query = query.where(Job.kind == kind)
    if since:
        query = query.where(Job.created_at >= since)
    return pages.page(db, query, Job.created_at.desc(), lambda j: base_view(j, settings))


def _load_owned(settings: SettingsDep, user: CurrentUser, job_id: str) -> Job:
    with session_scope(settings.sqlalchemy_url) as db:
        return _owned_job(db, user, job_id)


@router.get("/{job_id}", response_model=JobView, responses=errors.documented(404))
async def get_job(job_id: IdPath, user: CurrentUser, settings: SettingsDep) -> JobView:
    """One job: status, stage, progress and per-stage state and accounting, read from its Prefect flow run."""
    # Async with short sessions of its own: no database transaction stays open across Prefect calls.
    job = await asyncio.to_thread(_load_owned, settings, user, job_id)
    try:
        async with get_client() as client:
            # A busy Prefect server must not make a status poll hang: past the limit, the database's view.
            return await asyncio.wait_for(live_view(job, settings, client), timeout=PREFECT_READ_TIMEOUT_S)
    except Exception as exc:  # Prefect unreachable or slow: what the database knows is still the truth so far
        view = base_view(job, settings)
        view.prefect_error = f"{type(exc).__name__}: {exc}"
        return view


def _owned_job(db: Session, user: Owner, job_id: str) -> Job:
    return removal.owned_job(db, user.id, job_id)


@router.post("/{job_id}/cancel", response_model=JobView, responses=errors.documented(404, 409, 503))
async def cancel_job(job_id: IdPath, user: CurrentUser, settings: SettingsDep) -> JobView:
    """Stop the job and take its document out of the search index and the graph (the file stays, for a retry)."""
    job, run_id = await asyncio.to_thread(removal.cancel, settings, user.id, job_id)  # busy stores: 503
    if run_id:  # a job not yet handed to Prefect has no run to stop
        async with get_client() as client:
            await control.stop_flow_run(client, run_id)
    return base_view(job, settings)


@router.post("/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=JobView,
             responses=errors.documented(404, 409))
def retry_job(job_id: IdPath, db: SessionDep, user: CurrentUser, settings: SettingsDep) -> JobView:
    """Resume at the first stage this job did not complete, reusing what earlier stages produced."""
    job = _owned_job(db, user, job_id)
    control.retry(job)
    db.commit()
    return base_view(job, settings)
