"""ingest-batch: many queued documents of one owner in one flow run, each still its own subflow run in the
Prefect UI. A flow run costs a process start (4-9 s here); one batch run amortises that over many documents."""

from __future__ import annotations

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.document import ingest_document
from ingestflow.settings import get_settings


@task(name="run-document", cache_policy=NO_CACHE, persist_result=False)
def run_document(job_id: str, dispatch_key: str | None) -> str:
    """One document's subflow; its failure is the job's own and never fails the batch's other documents."""
    state = ingest_document(job_id, dispatch_key, return_state=True)
    return state.type.value


@flow(
    name="ingest-batch",
    task_runner=ThreadPoolTaskRunner(max_workers=get_settings().batch_concurrency),  # type: ignore[arg-type]
    log_prints=True,
)
def ingest_batch(job_ids: list[str], dispatch_key: str | None = None) -> dict[str, str]:
    """Run the documents' subflows a few at a time, so the Dask workers always have the next stage queued."""
    futures = run_document.map(job_ids, dispatch_key=unmapped(dispatch_key))
    return {job_id: fut.result() for job_id, fut in zip(job_ids, futures, strict=True)}
