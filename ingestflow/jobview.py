"""A job as users see it, read from Prefect: the flow run's state and its task runs (one per stage)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import ArtifactSort, TaskRunSort

from ingestflow.db import Job, JobStatus
from ingestflow.settings import Settings

# Task name -> (stage users see, stages before it count towards progress)
STAGES: dict[str, list[tuple[str, str]]] = {
    "text": [("parse", "parsing"), ("chunk", "chunking"), ("embed", "embedding"),
             ("extract-entities", "graphing"), ("graph", "graphing")],
    "audio": [("transcribe", "transcribing"), ("improve", "improving"), ("chunk", "chunking"),
              ("embed", "embedding"), ("extract-entities", "graphing"), ("graph", "graphing")],
}

_PREFECT_TO_STATUS = {
    "SCHEDULED": JobStatus.queued,
    "PENDING": JobStatus.queued,
    "PAUSED": JobStatus.queued,
    "RUNNING": JobStatus.running,
    "CANCELLING": JobStatus.running,
    "COMPLETED": JobStatus.completed,
    "FAILED": JobStatus.failed,
    "CRASHED": JobStatus.failed,
    "CANCELLED": JobStatus.cancelled,
}


def _task_key(name: str) -> str:
    return name.rsplit("-", 1)[0]


def base_view(job: Job, settings: Settings) -> dict[str, Any]:
    status = JobStatus(job.status)
    run_id = job.flow_run_id or job.batch_flow_run_id
    return {
        "id": job.id,
        "document_id": job.document_id,
        "kind": job.kind,
        "status": status.value,
        "stage": job.stage if not status.terminal else None,
        "progress": 100 if status == JobStatus.completed else 0,
        "message": job.error or status.value.capitalize(),
        "error": job.error,
        "error_retryable": job.error_retryable,
        "attempts": job.attempts,
        "notes": list(job.notes or []),
        # What the database knows (stages this job completed); the live view adds Prefect's detail.
        "stages": [
            {"name": key, "stage": label, "state": "completed" if key in (job.completed_stages or []) else "pending",
             "attempts": None, "started_at": None, "finished_at": None, "error": None}
            for key, label in STAGES.get(job.kind, STAGES["text"])
        ],
        "flow_run_id": job.flow_run_id,
        "batch_flow_run_id": job.batch_flow_run_id,
        "flow_run_url": f"{settings.prefect_ui_url}/runs/flow-run/{run_id}" if run_id else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


async def live_view(job: Job, settings: Settings, client: PrefectClient) -> dict[str, Any]:
    view = base_view(job, settings)
    if not job.flow_run_id:
        return view
    run = await client.read_flow_run(UUID(job.flow_run_id))
    task_runs = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), sort=TaskRunSort.EXPECTED_START_TIME_ASC
    )
    by_key: dict[str, TaskRun] = {}
    for run_ in task_runs:
        by_key[_task_key(run_.name)] = run_  # the latest run of a stage wins
    stages = []
    done = 0
    current = None
    current_run: TaskRun | None = None
    plan = STAGES.get(job.kind, STAGES["text"])
    for key, label in plan:
        tr: TaskRun | None = by_key.get(key)
        state = tr.state.type.value.lower() if tr and tr.state else "pending"
        if tr is None and key in (job.completed_stages or []):
            state = "completed"  # done by an earlier attempt of this job; a resumed run reuses it
        if state == "completed":
            done += 1
        elif state in ("running", "pending", "scheduled") and tr is not None and current is None:
            current, current_run = label, tr
        stages.append({
            "name": key,
            "stage": label,
            "state": state,
            "attempts": tr.run_count if tr else 0,
            "started_at": tr.start_time if tr else None,
            "finished_at": tr.end_time if tr else None,
            "error": tr.state.message if tr and tr.state and state in ("failed", "crashed") else None,
        })
    view["stages"] = stages
    status = JobStatus(job.status)
    if not status.terminal and run.state is not None:
        status = _PREFECT_TO_STATUS.get(run.state.type.value, status)
        view["status"] = status.value
        if status.terminal:  # Prefect knows before the dispatcher has mirrored it into the job
            view["error"] = run.state.message or run.state.type.value.lower()
            view["error_retryable"] = run.state.type.value == "CRASHED"
    if not status.terminal:
        view["stage"] = current or (plan[done][1] if done < len(plan) else None)
        fraction, detail = await _stage_progress(client, run.id, current_run)
        view["progress"] = min(99, int(100 * (done + fraction) / len(plan)))
        view["message"] = detail or f"{(view['stage'] or 'queued').capitalize()} ({done} of {len(plan)} stages done)"
    elif status == JobStatus.completed:
        view["message"] = f"Completed all {len(plan)} stages"
    return view


async def _stage_progress(client: PrefectClient, flow_run_id: UUID, stage_run: TaskRun | None) -> tuple[float, str]:
    """The running stage's own progress artifact ("Embedding 60 of 150 chunks"), if it reports one."""
    if stage_run is None:
        return 0.0, ""
    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(
            type=ArtifactFilterType(any_=["progress"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
        ),
        sort=ArtifactSort.UPDATED_DESC,
        limit=5,
    )
    for art in artifacts:
        if art.task_run_id == stage_run.id:
            pct = art.data if isinstance(art.data, (int, float)) else 0.0
            return float(pct) / 100.0, art.description or ""
    return 0.0, ""
