"""ingest-document: one document through its stages. Orchestration only; the work lives in tasks/."""

from __future__ import annotations

import time

from prefect import flow
from prefect.runtime import flow_run
from prefect_dask import DaskTaskRunner

from flows.placement import on_workers
from ingestflow.pipeline import plan
from ingestflow.settings import get_settings
from tasks.jobs import fail_job, finish_job, record_stage, start_job


@flow(
    name="ingest-document",
    task_runner=DaskTaskRunner(address=get_settings().dask_scheduler),  # type: ignore[arg-type]
    flow_run_name="{job_id}",
    log_prints=True,
)
def ingest_document(job_id: str, dispatch_key: str | None = None, priority: int = 0) -> str:
    """One uploaded document through the stages of its kind, resuming after those already completed."""
    claimed = start_job(job_id, dispatch_key, str(flow_run.get_id()))
    if claimed is None:
        return "skipped: cancelled, deleted, finished or handed to another run"
    ref, done = claimed
    for stage in plan(ref.kind):
        if stage.name in done:
            continue
        submitted = time.time()
        try:
            result = on_workers(stage, ref, priority).result()
        except BaseException as exc:
            fail_job(job_id, dispatch_key, stage.name, exc)
            raise
        record_stage(job_id, dispatch_key, stage, result, submitted)
    finish_job(job_id, dispatch_key)
    return "completed"
