"""What every stage task shares: retries only for transient errors, the declared timeout, no result persistence,
and the accounting (wall, CPU seconds, attempt) each result carries back from the worker."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from ingestflow.errors import is_transient
from ingestflow.pipeline import BY_NAME, StageResult
from ingestflow.refs import DocumentRef

R = TypeVar("R", bound=StageResult)

RETRIES = 3
RETRY_DELAYS: list[float] = [2, 10, 30]

# Stage name -> its Prefect task; filled by each stage module's decorator (tasks/registry.py imports them all).
TASKS: dict[str, Task[..., Any]] = {}


def retry_transient(_task: Task[Any, Any], _run: TaskRun, state: State[Any]) -> bool:
    exc = state.data if isinstance(state.data, BaseException) else None
    return exc is None or is_transient(exc)


def _accounted(fn: Callable[[DocumentRef], R]) -> Callable[[DocumentRef], R]:
    @functools.wraps(fn)
    def run(ref: DocumentRef) -> R:
        from prefect.runtime import task_run

        started, wall, cpu = time.time(), time.perf_counter(), time.thread_time()
        result = fn(ref)
        result.started_at = started
        result.wall_s = time.perf_counter() - wall
        result.cpu_s = time.thread_time() - cpu  # this worker thread's own CPU, not its neighbours'
        result.attempt = int(task_run.run_count or 1)
        return result

    return run


def stage_task(name: str) -> Callable[[Callable[[DocumentRef], R]], Task[[DocumentRef], R]]:
    """The Prefect task of the stage declared as `name` in ingestflow.pipeline."""
    spec = BY_NAME[name]

    def wrap(fn: Callable[[DocumentRef], R]) -> Task[[DocumentRef], R]:
        stage = task(
            name=name,
            description=spec.description,
            retries=RETRIES,
            retry_delay_seconds=RETRY_DELAYS,
            retry_condition_fn=retry_transient,
            timeout_seconds=spec.timeout_s,
            cache_policy=NO_CACHE,
            persist_result=False,
        )(_accounted(fn))
        TASKS[name] = stage
        return stage

    return wrap
