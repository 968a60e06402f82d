"""Where a stage runs: on the Dask cluster, asking for a GPU only when a worker has one, and at the priority
its run was given (a single upload's stages go before a bulk import's)."""

from __future__ import annotations

from typing import Any

import dask

from ingestflow.pipeline import Stage
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.registry import task_for


def on_workers(stage: Stage, refs: list[DocumentRef], priority: int, task_run_name: str) -> Any:
    # dask honours annotations only for .submit(), and a task waits forever for a resource no worker
    # declares, so the start-up check sets gpu_resource.
    annotations: dict[str, Any] = {"priority": priority}
    if get_settings().gpu_resource and stage.gpu:
        annotations["resources"] = {"GPU": 1}
    with dask.annotate(**annotations):
        return task_for(stage.name).with_options(task_run_name=task_run_name).submit(refs)
