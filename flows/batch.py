"""ingest-batch: many queued documents of one owner in one flow run. A flow run costs a process start (forked by
deployments/flowhost.py, about 1 s here) and a model call or store write per document costs more than the work on
a short note: one batch run amortises the first, batched stages (ingestflow/jobs/scheduler.py) the second. Each
stage is still its own task run in the Prefect UI, named after the documents it works for."""

from __future__ import annotations

from prefect import flow
from prefect_dask import DaskTaskRunner

from flows.run import run_jobs
from ingestflow.settings import get_settings


@flow(
    name="ingest-batch",
    task_runner=DaskTaskRunner(address=get_settings().dask_scheduler),  # type: ignore[arg-type]
    log_prints=True,
)
def ingest_batch(job_ids: list[str], dispatch_key: str | None = None) -> dict[str, str]:
    """The documents through their stages together; one document's failure is its own job's alone. The run takes
    its owner's next queued documents as it goes, while no other owner's wait (ingestflow/jobs/dispatcher.py)."""
    return run_jobs(job_ids, dispatch_key, hold=get_settings().dispatch_batch_size)
