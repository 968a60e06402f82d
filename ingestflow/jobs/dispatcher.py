"""Hands queued jobs to Prefect at a pace its server and workers can take, fairly between owners, and mirrors
runs that ended without the flow's own verdict back into their jobs. A process of its own (`ingestflow
dispatcher`, a child of `ingestflow up` and a service of docker-compose.yml), not part of the API: in the API's
event loop it took 11.5% of a burst's samples from the uploads, and with it there the API could not run several
processes.

Uploads only insert rows; this loop creates flow runs, as soon as a job is queued (ingestflow/jobs/wake.py) and
at every tick. Each tick claims jobs in the database first (a fresh dispatch key, `FOR UPDATE SKIP LOCKED`, so
two dispatchers never hand out the same job), then creates the run with that key as its idempotency key and
parameter: a run only starts a job whose key it carries. One job becomes an ingest-document run; several of one
owner become one ingest-batch run (a flow run costs seconds of process start here). No more runs are in flight
than the worker runs at once, and no owner holds all of them, so one owner's bulk import never makes another
owner's upload wait behind it. If Prefect is unreachable, jobs stay queued and go out on a later tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import State
from prefect.deployments.flow_runs import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed
from sqlalchemy import ColumnElement, func, or_, select

from ingestflow.db import ACTIVE_STATUSES, Job, JobStatus, init_db, session_scope, utcnow
from ingestflow.jobs.control import give_up_after_trouble, requeue, requeue_after_trouble
from ingestflow.jobs.notify_runs import NotifyRuns
from ingestflow.jobs.wake import QueueWake
from ingestflow.prefect_names import BATCH_DEPLOYMENT, DOCUMENT_DEPLOYMENT
from ingestflow.settings import Settings

log = logging.getLogger("ingestflow.jobs.dispatcher")

TERMINAL_PREFECT = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# A single upload's stages run before a bulk import's on the Dask workers.
SINGLE_PRIORITY = 10
# Claimed jobs whose run was never recorded (the dispatcher died in between) go back to the queue after this.
UNRECORDED_AFTER = timedelta(seconds=120)
# A run stays Pending from the worker's hand-over until its process reads it (1-5 s here, 30 s at load 8).
# A process that dies before that (the database restarting under the server: a 500 on reading the run)
# leaves it Pending for good when the worker's report of the crash fails too; it never sends a heartbeat, so
# the crash automation never sees it (a CI run on 04bcd49 held two such runs, and their owner's slots, for
# the 15 minutes the test waited). Past this, the dispatcher calls it crashed.
PENDING_AT_MOST = timedelta(seconds=180)

@dataclass(frozen=True)
class Claim:
    key: str
    owner_id: str
    job_ids: list[str]


def _waiting(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """A queued job no run holds, and due (not waiting out a backoff)."""
    return (Job.status == JobStatus.queued, Job.dispatch_key.is_(None),
            or_(Job.dispatch_after.is_(None), Job.dispatch_after <= now))


def _claim(settings: Settings) -> Claim | None:
    """The owner with the fewest runs in flight (then the oldest waiting job) gets the next run."""
    now = utcnow()
    with session_scope(settings.sqlalchemy_url) as db:
        in_flight: dict[str, int] = {owner: n for owner, n in db.execute(
            select(Job.owner_id, func.count(func.distinct(Job.dispatch_key)))
            .where(Job.status.in_(ACTIVE_STATUSES), Job.dispatch_key.is_not(None))
            .group_by(Job.owner_id)
        ).tuples()}
        if sum(in_flight.values()) >= settings.worker_limit:
            return None
        waiting = db.execute(
            select(Job.owner_id, func.min(Job.created_at)).where(*_waiting(now)).group_by(Job.owner_id)
        ).all()
        per_owner = max(1, settings.worker_limit - 1)
        candidates = [(in_flight.get(owner, 0), oldest, owner) for owner, oldest in waiting
                      if in_flight.get(owner, 0) < per_owner]
        if not candidates:
            return None
        owner = min(candidates)[2]
        jobs = list(db.scalars(
            select(Job)
            .where(Job.owner_id == owner, *_waiting(now))
            .order_by(Job.created_at)
            .limit(settings.dispatch_batch_size)
            .with_for_update(skip_locked=True)
        ))
        if not jobs:
            return None
        key = str(uuid.uuid4())
        for job in jobs:
            job.dispatch_key, job.dispatched_at = key, now
        return Claim(key, owner, [j.id for j in jobs])


# A batch run takes more of its owner's queued jobs while it runs (`take_more`) for at most this long, so a bulk
# import is a few long runs rather than one run per `dispatch_batch_size` documents, each a process start of
# 2-3.5 CPU s (issue 29: 30.7 of a 200-note burst's 54 CPU s went to the Prefect worker and its runs), while a
# run in the Prefect UI still ends within minutes.
TAKE_MORE_FOR = timedelta(minutes=10)


def take_more(settings: Settings, dispatch_key: str, run_id: str, limit: int) -> list[str]:
    """Up to `limit` more queued jobs of the owner whose jobs this batch run holds, now held by it (its dispatch
    key, and the run as their batch run): none while another owner's jobs wait for a run, so the dispatcher's
    fairness between owners stands, and none once the run has taken for `TAKE_MORE_FOR`."""
    now = utcnow()
    with session_scope(settings.sqlalchemy_url) as db:
        first = db.execute(select(Job.owner_id, func.min(Job.dispatched_at))
                           .where(Job.dispatch_key == dispatch_key).group_by(Job.owner_id)).first()
        if first is None or first[1] is None or now - first[1] > TAKE_MORE_FOR:
            return []
        owner = first[0]
        if db.scalar(select(Job.id).where(Job.owner_id != owner, *_waiting(now)).limit(1)) is not None:
            return []
        jobs = list(db.scalars(select(Job).where(Job.owner_id == owner, *_waiting(now)).order_by(Job.created_at)
                               .limit(limit).with_for_update(skip_locked=True)))
        for job in jobs:
            job.dispatch_key, job.dispatched_at, job.batch_flow_run_id = dispatch_key, now, run_id
        return [j.id for j in jobs]


def _release(settings: Settings, key: str) -> None:
    """The run could not be created: the claimed jobs wait for the next tick (a run that was created after
    all will find its key gone and skip them)."""
    with session_scope(settings.sqlalchemy_url) as db:
        for job in db.scalars(select(Job).where(Job.dispatch_key == key, Job.status == JobStatus.queued)):
            job.dispatch_key = job.dispatched_at = None


def _mark_dispatched(settings: Settings, claim: Claim, run_id: str) -> None:
    with session_scope(settings.sqlalchemy_url) as db:
        for job in db.scalars(select(Job).where(Job.dispatch_key == claim.key)):
            if len(claim.job_ids) == 1:
                job.flow_run_id = job.flow_run_id or run_id
            else:
                job.batch_flow_run_id = run_id


async def dispatch_once(settings: Settings) -> int:
    """Create runs until the queue is empty or every run slot is taken; returns the jobs handed out."""
    handed = 0
    while True:
        # Database work runs in threads: a lock wait must never stall the loop (reconciling, notify runs).
        claim = await asyncio.to_thread(_claim, settings)
        if claim is None:
            return handed
        try:
            if len(claim.job_ids) == 1:
                params = {"job_id": claim.job_ids[0], "dispatch_key": claim.key, "priority": SINGLE_PRIORITY}
                run = await arun_deployment(DOCUMENT_DEPLOYMENT, parameters=params, timeout=0,
                                            idempotency_key=claim.key)
            else:
                run = await arun_deployment(BATCH_DEPLOYMENT, parameters={"job_ids": claim.job_ids,
                                            "dispatch_key": claim.key}, timeout=0, idempotency_key=claim.key)
        except BaseException:
            await asyncio.to_thread(_release, settings, claim.key)
            raise
        await asyncio.to_thread(_mark_dispatched, settings, claim, str(run.id))
        log.info("dispatched %d job(s) of %s to flow run %s", len(claim.job_ids), claim.owner_id, run.id)
        handed += len(claim.job_ids)


@dataclass(frozen=True)
class _Pending:
    job_id: str
    key: str
    runs: tuple[str, ...]  # the job's own (sub)flow run first, then its batch run


def _pending(settings: Settings) -> list[_Pending]:
    cutoff = utcnow() - timedelta(seconds=5)
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        return [
            _Pending(j.id, j.dispatch_key or "", tuple(r for r in (j.flow_run_id, j.batch_flow_run_id) if r))
            for j in db.scalars(select(Job).where(
                Job.status.in_(ACTIVE_STATUSES), Job.dispatch_key.is_not(None), Job.dispatched_at < cutoff))
        ]


def _infra_backoff(settings: Settings, retries: int) -> float:
    return float(min(300.0, settings.retry_backoff_s * 2 ** retries))


def _apply_verdicts(settings: Settings, verdicts: dict[str, tuple[str, str, str]]) -> None:
    with session_scope(settings.sqlalchemy_url) as db:
        for job_id, (key, state, message) in verdicts.items():
            job = db.get(Job, job_id)
            # Re-read: the flow may have recorded its own outcome since, or the job moved to a new dispatch.
            if job is None or JobStatus(job.status).terminal or job.dispatch_key != key:
                continue
            if state == "CANCELLED":
                job.status, job.error, job.error_retryable = JobStatus.cancelled, "cancelled in Prefect", False
                job.finished_at = utcnow()
            elif state == "UNRECORDED":
                requeue(job, resume=True)
            elif (job.infra_retries or 0) < settings.max_infra_retries:
                note = f"flow run ended {state.lower()} before the job finished: {message}".strip()
                requeue_after_trouble(job, note, _infra_backoff(settings, job.infra_retries or 0))
            else:
                give_up_after_trouble(job, f"gave up after {job.infra_retries} infrastructure failures; last: "
                                           f"flow run ended {state.lower()}: {message}")


def verdict_of(state: State | None, now: datetime) -> tuple[str, str] | None:
    """What a flow run's state says about its job: None while it may still finish it."""
    if state is None:
        return None
    kind, message = state.type.value, state.message or ""
    if kind in TERMINAL_PREFECT:
        return kind, message
    if kind == "PENDING" and now - state.timestamp > PENDING_AT_MOST:
        return "CRASHED", f"pending for {(now - state.timestamp).total_seconds():.0f} s: its process never started"
    return None


async def _read_verdict(client: PrefectClient, run_id: str) -> tuple[str, str] | None:
    try:
        run = await client.read_flow_run(UUID(run_id))
    except ObjectNotFound:
        return "MISSING", f"flow run {run_id} is unknown to Prefect"
    verdict = verdict_of(run.state, utcnow())
    if verdict is not None and run.state is not None and run.state.type.value == "PENDING":
        # Say so in the Prefect UI too; a process that starts after all finds its job's key gone.
        with contextlib.suppress(Exception):
            await client.set_flow_run_state(run.id, Crashed(message=verdict[1]), force=True)
    return verdict


async def reconcile_once(settings: Settings) -> None:
    """Jobs whose flow run ended without the flow saying so (crash, cancel, kill, orchestrator errors) go back
    to the queue; none of that is the document's fault."""
    pending = await asyncio.to_thread(_pending, settings)
    if not pending:
        return
    verdicts: dict[str, tuple[str, str, str]] = {}
    seen: dict[str, tuple[str, str] | None] = {}
    async with get_client() as client:
        for p in pending:
            for run_id in p.runs:
                if run_id not in seen:
                    seen[run_id] = await _read_verdict(client, run_id)
                verdict = seen[run_id]
                if verdict is not None:
                    verdicts[p.job_id] = (p.key, *verdict)
                    break
    unrecorded = await asyncio.to_thread(_unrecorded, settings)
    for job_id, key in unrecorded:
        verdicts.setdefault(job_id, (key, "UNRECORDED", ""))
    if verdicts:
        await asyncio.to_thread(_apply_verdicts, settings, verdicts)


def _unrecorded(settings: Settings) -> list[tuple[str, str]]:
    cutoff = utcnow() - UNRECORDED_AFTER
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        return [(j.id, j.dispatch_key or "") for j in db.scalars(select(Job).where(
            Job.status == JobStatus.queued, Job.dispatch_key.is_not(None), Job.dispatched_at < cutoff,
            Job.flow_run_id.is_(None), Job.batch_flow_run_id.is_(None)))]


async def run_forever(settings: Settings, stop: asyncio.Event) -> None:
    notify = NotifyRuns()
    async with QueueWake(settings.sqlalchemy_url) as wake:
        while not stop.is_set():
            try:
                await reconcile_once(settings)
                await dispatch_once(settings)
            except Exception as exc:  # Prefect down or busy: keep the jobs, try next tick
                log.warning("dispatch tick failed, will retry: %s", exc)
            try:
                await notify.tick(settings)
            except Exception as exc:  # the deliveries wait in the database for a later tick
                log.warning("starting a notify run failed, will retry: %s", exc)
            await wake.wait(stop, settings.dispatch_interval_s)


def serve(settings: Settings) -> None:
    """Run the loop until SIGTERM or SIGINT, finishing the tick in hand."""

    async def main() -> None:
        # The schema at head before the first claim (a no-op under `ingestflow up`, which upgrades first).
        await asyncio.to_thread(init_db, settings.sqlalchemy_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("dispatching queued jobs to %s as they are queued, and every %g s", settings.prefect_url,
                 settings.dispatch_interval_s)
        await run_forever(settings, stop)

    asyncio.run(main())
