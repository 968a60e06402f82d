"""Where a stage runs: on the Dask cluster, asking for a GPU only when a worker has one."""

from __future__ import annotations

import contextlib
from typing import Any

import dask

from ingestflow.settings import get_settings

# The stages a GPU speeds up. dask honours the annotation only for .submit(), and a task waits
# forever for a resource no worker declares, so the start-up check sets gpu_resource.
GPU_STAGES = {"parse", "transcribe", "embed"}


def on_workers(stage_task: Any, *args: Any) -> Any:
    use_gpu = get_settings().gpu_resource and stage_task.name in GPU_STAGES
    ctx = dask.annotate(resources={"GPU": 1}) if use_gpu else contextlib.nullcontext()
    with ctx:
        return stage_task.submit(*args)
