"""Where a stage runs: on the Dask cluster, asking for a GPU only when a worker has one, and at the priority
its run was given (a single upload's stages go before a bulk import's) plus the stage's precedence."""

from __future__ import annotations

from typing import Any

import dask

from ingestflow.pipeline import PRECEDENCE, Stage
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.registry import task_for


def on_workers(stage: Stage, refs: list[DocumentRef], priority: int, task_run_name: str) -> Any:
    # dask honours annotations only for .submit(), and a task waits forever for a resource no worker
    # declares, so the start-up check sets gpu_resource.
    # Runs' priorities are 10 apart (ingestflow/jobs/dispatcher.py) and a stage's precedence is under 10: within a
    # run the stage more others wait on goes first, and every stage of a single upload before a bulk import's.
    annotations: dict[str, Any] = {"priority": priority + PRECEDENCE[stage.name]}
    if get_settings().gpu_resource and stage.gpu:
        annotations["resources"] = {"GPU": 1}
    with dask.annotate(**annotations):
        return task_for(stage.name).with_options(task_run_name=task_run_name).submit(refs)
