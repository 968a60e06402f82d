"""What every stage task shares: retries only for transient errors, the declared timeout, no result persistence,
and the accounting (wall, CPU seconds, attempt) each result carries back from the worker."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from ingestflow.errors import crossable, is_transient
from ingestflow.pipeline import BY_NAME, StageResult
from ingestflow.refs import DocumentRef

log = logging.getLogger(__name__)
RETRIES = 3
RETRY_DELAYS: list[float] = [2, 10, 30]

# Stage name -> its Prefect task; filled by each stage module's decorator (tasks/registry.py imports them all).
TASKS: dict[str, Task[..., Any]] = {}


def retry_transient(_task: Task[Any, Any], _run: TaskRun, state: State[Any]) -> bool:
    exc = state.data if isinstance(state.data, BaseException) else None
    return exc is None or is_transient(exc)


def _share(results: list[StageResult], started: float, wall: float, cpu: float, attempt: int) -> None:
    """One call's time, shared out by the documents' units (chunks); each keeps the call's start and end."""
    total = sum(max(r.units, 1) for r in results) or 1
    for r in results:
        part = max(r.units, 1) / total
        r.started_at, r.finished_at = started, started + wall
        r.wall_s, r.cpu_s, r.attempt = wall * part, cpu * part, attempt


def _timed(call: Callable[[], Any], attempt: int) -> list[StageResult]:
    started, wall, cpu = time.time(), time.perf_counter(), time.thread_time()
    result = call()
    results = result if isinstance(result, list) else [result]
    # this worker thread's own CPU, not its neighbours'
    _share(results, started, time.perf_counter() - wall, time.thread_time() - cpu, attempt)
    return results


def _over_documents(fn: Callable[..., Any], batched: bool) -> Callable[[list[DocumentRef]], list[StageResult]]:
    """The task's function: the documents in one call (batched), or one after another, each timed alone."""

    def run(refs: list[DocumentRef]) -> list[StageResult]:
        from prefect.runtime import task_run

        attempt = int(task_run.run_count or 1)
        try:
            if batched:
                return _timed(lambda: fn(refs), attempt)
            return [r for ref in refs for r in _timed(functools.partial(fn, ref), attempt)]
        except Exception as exc:
            # The flow receives it from a Dask worker: one that cannot be unpickled there arrived as a TypeError
            # about its constructor instead of the stage's error (issue 21).
            crossing = crossable(exc)
            if crossing is exc:
                raise
            log.warning("%s failed; it leaves the worker as %r", fn.__name__, crossing, exc_info=exc)
        # Raised outside the handler, so the original does not travel along as its context.
        raise crossing

    # Prefect names and keys the task by these.
    run.__name__, run.__qualname__, run.__module__ = fn.__name__, fn.__qualname__, fn.__module__
    run.__doc__ = fn.__doc__
    return run


def stage_task(name: str) -> Callable[[Callable[..., Any]], Task[..., Any]]:
    """The Prefect task of the stage declared as `name` in ingestflow.pipeline. It takes a list of DocumentRef
    and returns one result per document; a batched stage's function does so itself, the others' functions take
    one DocumentRef and are called for each."""
    spec = BY_NAME[name]

    def wrap(fn: Callable[..., Any]) -> Task[..., Any]:
        stage: Task[..., Any] = task(
            name=name,
            description=spec.description,
            retries=RETRIES,
            retry_delay_seconds=RETRY_DELAYS,
            retry_condition_fn=retry_transient,
            timeout_seconds=spec.timeout_s,
            cache_policy=NO_CACHE,
            persist_result=False,
        )(_over_documents(fn, spec.batched))
        TASKS[name] = stage
        return stage

    return wrap
