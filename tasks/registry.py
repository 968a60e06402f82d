"""Every stage's Prefect task by name: importing the stage modules binds them (tasks.common.stage_task)."""

from __future__ import annotations

from typing import Any

from prefect import Task

from ingestflow.pipeline import STAGES
from tasks import (  # noqa: F401  (they register)
    chunk,
    embed,
    entities,
    graph,
    improve,
    parse,
    redact,
    summarise,
    transcribe,
    translate,
)
from tasks.common import TASKS

missing = {s.name for s in STAGES} - TASKS.keys()
if missing:  # a stage declared in the pipeline without a module is a programming error, found at import
    raise RuntimeError(f"stages without a task: {sorted(missing)}")


def task_for(name: str) -> Task[..., Any]:
    return TASKS[name]
