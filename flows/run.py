"""A flow run's documents through the pipeline on the Dask cluster (ingest-document and ingest-batch): the
scheduler of ingestflow/jobs/scheduler.py (how documents are grouped, split and resumed, and why) over Prefect
task runs placed on the workers and the job bookkeeping of ingestflow/jobs/lifecycle.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prefect.runtime import flow_run
from prefect_dask.task_runners import PrefectDaskFuture

from flows.placement import on_workers
from ingestflow.jobs.dispatcher import take_more
from ingestflow.jobs.lifecycle import fail_job, finish_job, forget_deleted, mark_running, record_stage, start_job
from ingestflow.jobs.scheduler import Scheduler
from ingestflow.pipeline import Stage, StageResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from ingestflow.shell import task_context

StageFuture = PrefectDaskFuture[list[StageResult]]
log = logging.getLogger("ingestflow.flows.run")


@dataclass(frozen=True)
class DaskExecutor:
    """Stages as Prefect tasks on the Dask workers, at the run's priority."""

    priority: int

    def submit(self, stage: Stage, refs: list[DocumentRef], task_run_name: str) -> StageFuture:
        future: StageFuture = on_workers(stage, refs, self.priority, task_run_name)
        return future

    def done(self, handles: list[StageFuture], timeout_s: float) -> list[StageFuture]:
        """The futures done within the timeout (distributed.wait wants a default client, which Prefect's Dask
        runner does not set; Future.done() is a local check)."""
        deadline = time.monotonic() + timeout_s
        while True:
            done = [f for f in handles if f.wrapped_future.done()]
            if done or time.monotonic() > deadline:
                return done
            time.sleep(0.02)

    def result(self, handle: StageFuture) -> list[StageResult]:
        return handle.result()


@dataclass(frozen=True)
class LifecycleBooks:
    """The job bookkeeping in the database, for the run that holds `dispatch_key`."""

    dispatch_key: str | None
    run_id: str

    def start(self, job_id: str) -> tuple[DocumentRef, list[str]] | None:
        return start_job(job_id, self.dispatch_key, self.run_id)

    def mark_running(self, job_ids: Sequence[str], stage: Stage, task_run: str) -> None:
        mark_running(job_ids, self.dispatch_key, stage, task_run)

    def record_stage(self, done: Sequence[tuple[str, StageResult]], stage: Stage, submitted_at: float,
                     task_run: str) -> set[str]:
        return record_stage(done, self.dispatch_key, stage, submitted_at, self.run_id, task_run)

    def finish(self, job_id: str) -> None:
        finish_job(job_id, self.dispatch_key)

    def fail(self, job_id: str, stage: str, exc: BaseException) -> str:
        return fail_job(job_id, self.dispatch_key, stage, exc)

    def forget_deleted(self, refs: Sequence[DocumentRef]) -> None:
        forget_deleted(refs)

    def more(self, limit: int) -> list[str]:
        if self.dispatch_key is None:  # a run started by hand holds no key to hold more jobs by
            return []
        try:
            return take_more(get_settings(), self.dispatch_key, self.run_id, limit)
        except Exception as exc:  # taking more only saves runs: the jobs stay queued for the dispatcher
            log.warning("taking more queued jobs failed, leaving them to the dispatcher: %s", exc)
            return []


def run_jobs(job_ids: list[str], dispatch_key: str | None, priority: int = 0, hold: int = 0) -> dict[str, str]:
    """Each job's outcome: completed, failed, requeued (transient trouble, back in the queue) or skipped. With
    `hold`, the run takes its owner's next queued jobs as it goes, up to that many in hand (ingest-batch)."""
    task_context.install_flow_side()  # each stage submitted reuses the run's serialized settings
    books = LifecycleBooks(dispatch_key, str(flow_run.get_id()))
    scheduler: Scheduler[StageFuture] = Scheduler(DaskExecutor(priority), books, hold=hold)
    return scheduler.run(job_ids)
