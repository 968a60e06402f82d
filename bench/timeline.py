"""Where a batch's time goes, from the jobs' own accounting: the median document's path from upload to done,
split into waiting for the dispatcher, the flow run's start, and per stage the flow's hand-off (the stage it
waits for done -> submitted), the wait for a worker thread and Prefect's task start (submitted -> running), and
the stage's own time."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from ingestflow.db import Job, session_scope
from ingestflow.pipeline import StageMetrics, plan_for, waits_for


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def first_dispatch(settings: Any, job_ids: list[str]) -> float:
    """When the first of these jobs was dispatched (a flow run created for it), Unix seconds; NaN if none was."""
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        first = db.scalar(select(func.min(Job.dispatched_at)).where(Job.id.in_(job_ids)))
    ts = _ts(first)
    return float("nan") if ts is None else ts


def timeline(settings: Any, job_ids: list[str]) -> str:
    parts: dict[str, list[float]] = defaultdict(list)
    runs: set[str] = set()
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        jobs = list(db.scalars(select(Job).where(Job.id.in_(job_ids))))
    for job in jobs:
        created, dispatched, started = _ts(job.created_at), _ts(job.dispatched_at), _ts(job.started_at)
        finished = _ts(job.finished_at)
        if None in (created, dispatched, started, finished):
            continue
        assert created is not None and dispatched is not None and started is not None and finished is not None
        runs.add(job.batch_flow_run_id or job.flow_run_id or "")
        parts["dispatcher"].append(dispatched - created)
        parts["flow start"].append(started - dispatched)
        stages = {name: StageMetrics.model_validate(m) for name, m in (job.stage_metrics or {}).items()}
        ended: dict[str, float] = {}
        planned = plan_for(job)
        for spec in planned:  # in the plan's order, so the stage each waits for has been seen
            m = stages.get(spec.name)
            run_start, run_end = (_ts(m.started_at), _ts(m.finished_at)) if m else (None, None)
            if m is None or run_start is None or run_end is None:
                continue
            before = waits_for(spec, planned)  # stages side by side are handed off from the same one
            submitted = run_start - m.wait_s
            handed = ended.get(before.name, started) if before else started
            parts[f"{spec.name}: hand-off"].append(submitted - handed)
            parts[f"{spec.name}: to running"].append(m.wait_s)
            parts[f"{spec.name}: own"].append(run_end - run_start)
            ended[spec.name] = run_end
        parts["finish"].append(finished - max(ended.values(), default=started))
        parts["total"].append(finished - created)
    lines = [f"timeline of {len(jobs)} jobs in {len(runs)} flow runs (median seconds per document):"]
    lines += [f"  {k:<28} {statistics.median(v):6.2f}  (max {max(v):.2f})" for k, v in parts.items()]
    return "\n".join(lines)
