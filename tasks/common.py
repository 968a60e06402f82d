"""What every stage task shares: retries only for transient errors, a timeout, no result persistence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from ingestflow.errors import is_transient

F = TypeVar("F", bound=Callable[..., Any])

RETRIES = 3
RETRY_DELAYS: list[float] = [2, 10, 30]


def retry_transient(_task: Task[Any, Any], _run: TaskRun, state: State[Any]) -> bool:
    exc = state.data if isinstance(state.data, BaseException) else None
    return exc is None or is_transient(exc)


def stage_task(name: str, timeout_s: float) -> Callable[[F], Any]:
    def wrap(fn: F) -> Any:
        return task(
            name=name,
            retries=RETRIES,
            retry_delay_seconds=RETRY_DELAYS,
            retry_condition_fn=retry_transient,
            timeout_seconds=timeout_s,
            cache_policy=NO_CACHE,
            persist_result=False,
        )(fn)

    return wrap
