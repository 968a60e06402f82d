"""ingest-document: one document through its stages. Orchestration only; the work lives in tasks/."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect_dask import DaskTaskRunner

from flows.placement import on_workers
from ingestflow.settings import get_settings
from tasks.chunk import chunk
from tasks.embed import embed
from tasks.entities import extract_entities
from tasks.graph import graph
from tasks.improve import improve
from tasks.jobs import describe_failure, finish_job, record_stage, start_job
from tasks.parse import parse
from tasks.transcribe import transcribe

STAGES: dict[str, list[tuple[str, Any]]] = {
    "text": [("parse", parse), ("chunk", chunk), ("embed", embed), ("extract-entities", extract_entities),
             ("graph", graph)],
    "audio": [("transcribe", transcribe), ("improve", improve), ("chunk", chunk), ("embed", embed),
              ("extract-entities", extract_entities), ("graph", graph)],
}


@flow(
    name="ingest-document",
    task_runner=DaskTaskRunner(address=get_settings().dask_scheduler),  # type: ignore[arg-type]
    flow_run_name="{job_id}",
    log_prints=True,
)
def ingest_document(job_id: str) -> dict[str, Any]:
    claimed = start_job(job_id)
    if claimed is None:
        return {"skipped": "job cancelled or deleted before it started"}
    ref, done = claimed
    results: dict[str, Any] = {}
    for stage, stage_task in STAGES[ref.kind]:
        if stage in done:
            continue
        try:
            results[stage] = on_workers(stage_task, ref).result()
        except BaseException as exc:
            error, retryable = describe_failure(stage, exc)
            finish_job(job_id, error, retryable)
            raise
        record_stage(job_id, stage, results[stage])
    finish_job(job_id)
    return results
