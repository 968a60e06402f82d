"""A job as users see it, read from Prefect: the flow run's state and its task runs (one per stage)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import ArtifactSort, TaskRunSort
from pydantic import BaseModel

from ingestflow.db import Job, JobStatus
from ingestflow.pipeline import StageMetrics, plan, plan_for, waits_for
from ingestflow.settings import Settings


class StageView(BaseModel):
    name: str  # the stage's task name, as declared in ingestflow.pipeline
    stage: str  # its label (`parsing`, `embedding`, ...)
    state: str  # pending | scheduled | running | completed | failed | crashed | cancelled
    attempts: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    metrics: StageMetrics | None = None  # wall, CPU and waiting seconds, attempts, model, once it finished


class JobView(BaseModel):
    """One job as users see it: status from its Prefect flow run, progress from the running stage."""

    id: str
    document_id: str
    kind: str
    redact: bool = False  # its plan includes the redact stage
    translate: bool = False  # and the translate stage
    status: JobStatus
    stage: str | None
    progress: int
    message: str
    error: str | None  # only ever about the document
    error_retryable: bool | None
    infra_note: str | None  # orchestrator or process trouble that sent the job back to the queue
    infra_retries: int
    attempts: int
    notes: list[str]
    stages: list[StageView]
    wall_s: float | None  # start to finish of the job's last run
    stages_wall_s: float  # the stages' own time; wall_s minus this is the pipeline's overhead
    flow_run_id: str | None
    batch_flow_run_id: str | None
    flow_run_url: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    prefect_error: str | None = None  # set when Prefect could not be read and the database's view is shown

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


def _metrics(job: Job, name: str) -> StageMetrics | None:
    raw = (job.stage_metrics or {}).get(name)
    return StageMetrics.model_validate(raw) if raw else None


def _label(kind: str, name: str | None) -> str | None:
    return next((s.label for s in plan(kind, redact=True, translate=True) if s.name == name), name)


def _db_stages(job: Job) -> list[StageView]:
    """Completed stages with their accounting (attempts 0 when an earlier run did it and this one reused
    it); the failed stage with the job's error; the others pending."""
    done = job.completed_stages or []
    status = JobStatus(job.status)
    views = []
    planned = plan_for(job)
    for spec in planned:
        before = waits_for(spec, planned)
        # Every stage whose input is done runs (or waits in its group): the entities and the summary run beside
        # embed, and `job.stage` names the first of those running in the plan's order.
        started = job.stage is not None and (before is None or before.name in done)
        m = _metrics(job, spec.name)
        if spec.name in done:
            ran_here = m is not None and m.flow_run_id == job.flow_run_id
            views.append(StageView(name=spec.name, stage=spec.label, state="completed",
                                   attempts=m.attempts if m and ran_here else 0,
                                   started_at=m.started_at if m else None,
                                   finished_at=m.finished_at if m else None, metrics=m))
        elif status == JobStatus.failed and job.stage == spec.name:
            views.append(StageView(name=spec.name, stage=spec.label, state="failed", error=job.error))
        elif status == JobStatus.running and (job.stage == spec.name or started):
            views.append(StageView(name=spec.name, stage=spec.label, state="running"))
        else:
            views.append(StageView(name=spec.name, stage=spec.label, state="pending"))
    return views


def base_view(job: Job, settings: Settings) -> JobView:
    """What the database knows (stages this job completed, their accounting); the live view adds Prefect's."""
    status = JobStatus(job.status)
    run_id = job.flow_run_id or job.batch_flow_run_id
    wall = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
    metrics = [StageMetrics.model_validate(m) for m in (job.stage_metrics or {}).values()]
    if status == JobStatus.queued and job.infra_note:
        message = f"Queued again: {job.infra_note}"
    else:
        message = job.error or status.value.capitalize()
    return JobView(
        id=job.id,
        document_id=job.document_id,
        kind=job.kind,
        redact=job.redact,
        translate=job.translate,
        status=status,
        stage=_label(job.kind, job.stage) if not status.terminal else None,
        progress=100 if status == JobStatus.completed else 0,
        message=message,
        error=job.error,
        error_retryable=job.error_retryable,
        infra_note=job.infra_note,
        infra_retries=job.infra_retries or 0,
        attempts=job.attempts,
        notes=list(job.notes or []),
        stages=_db_stages(job),
        wall_s=round(wall, 3) if wall is not None else None,
        stages_wall_s=round(sum(m.wall_s for m in metrics), 3),
        flow_run_id=job.flow_run_id,
        batch_flow_run_id=job.batch_flow_run_id,
        flow_run_url=f"{settings.prefect_ui_url}/runs/flow-run/{run_id}" if run_id else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


async def live_view(job: Job, settings: Settings, client: PrefectClient) -> JobView:
    """The database's view, with the flow run's state and the running stage's task run and progress."""
    view = base_view(job, settings)
    if not job.flow_run_id:
        return view
    run = await client.read_flow_run(UUID(job.flow_run_id))
    status = JobStatus(job.status)
    if not status.terminal and run.state is not None and run.state.type.value in ("RUNNING", "CANCELLING"):
        # A run that ended without the flow's verdict is the dispatcher's to re-queue: until it has, the job
        # still reads as running rather than as a failure that is not the document's.
        status = _PREFECT_TO_STATUS.get(run.state.type.value, status)
        view.status = status
    if status == JobStatus.completed:
        view.message = f"Completed all {len(view.stages)} stages"
        return view
    current = await _current_task_run(client, run.id, job.stage_run)
    done = sum(1 for s in view.stages if s.state == "completed")
    for stage_view in view.stages:
        if stage_view.name == job.stage and current is not None and current.state is not None:
            stage_view.state = current.state.type.value.lower()
            stage_view.attempts = current.run_count
            stage_view.started_at = current.start_time
            stage_view.finished_at = current.end_time
            if stage_view.state in ("failed", "crashed"):
                stage_view.error = stage_view.error or current.state.message
    if status.terminal:
        return view
    total = len(view.stages)
    # The marked stage may have ended while the next waits in its group, or another that ran beside it goes on.
    marked = next((s for s in view.stages if s.name == job.stage and s.state != "completed"), None)
    pending = marked or next((s for s in view.stages if s.state != "completed"), None)
    view.stage = pending.stage if pending else None
    fraction, detail = await _stage_progress(client, run.id, current)
    view.progress = min(99, int(100 * (done + fraction) / total)) if total else 0
    view.message = detail or f"{(view.stage or 'queued').capitalize()} ({done} of {total} stages done)"
    return view


async def _current_task_run(client: PrefectClient, flow_run_id: UUID, name: str | None) -> TaskRun | None:
    """The task run doing the job's current stage (by the name the flow gave it), latest attempt first."""
    if not name:
        return None
    runs = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])),
        sort=TaskRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    return runs[0] if runs else None


async def _stage_progress(client: PrefectClient, flow_run_id: UUID, stage_run: TaskRun | None) -> tuple[float, str]:
    """The running stage's own progress artifact ("Embedding 60 of 150 chunks"), if it reports one."""
    if stage_run is None:
        return 0.0, ""
    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(
            type=ArtifactFilterType(any_=["progress"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
        ),
        sort=ArtifactSort.UPDATED_DESC,
        limit=20,
    )
    for art in artifacts:
        if art.task_run_id == stage_run.id:
            pct = art.data if isinstance(art.data, (int, float)) else 0.0
            return float(pct) / 100.0, art.description or ""
    return 0.0, ""
