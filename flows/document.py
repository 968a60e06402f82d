"""ingest-document: one document through its stages. Orchestration only; the work lives in tasks/."""

from __future__ import annotations

from prefect import flow
from prefect_dask import DaskTaskRunner

from flows.run import run_jobs
from ingestflow.settings import get_settings


@flow(
    name="ingest-document",
    task_runner=DaskTaskRunner(address=get_settings().dask_scheduler),  # type: ignore[arg-type]
    flow_run_name="{job_id}",
    log_prints=True,
)
def ingest_document(job_id: str, dispatch_key: str | None = None, priority: int = 0) -> str:
    """One uploaded document through the stages of its kind, resuming after those already completed."""
    return run_jobs([job_id], dispatch_key, priority)[job_id]
