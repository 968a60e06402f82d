"""Dask worker preload (`dask worker --preload ingestflow.shell.dask_recycle`): the worker gives the memory it
freed back to the system, and a worker whose memory still grows past a share of its limit is restarted the way
its lifetime ends.

Why the trim: glibc keeps freed heap for reuse (ingestflow/heap.py), and deployments/dask.yaml leaves its trim
threshold adaptive (whisper's speed). In bench/soak_bench.py the worker held 774 MiB in use and 1,182 MiB freed
after 300 documents; it had been trimmed only when idle, and a busy worker never is. It is now trimmed when idle and,
while busy, each time its RSS has grown by TRIM_STEP since the last trim: a few milliseconds every few seconds at
most, between stages that take hundreds.

Why the restart: Dask's own thresholds do not help a worker whose memory is models and allocator growth rather than task
results. Past 80% of the limit it pauses (takes no new tasks, yet nothing it holds can be spilled, so it stays
paused and the queue stalls); past 95% its nanny kills it, and the tasks it was running count as failed
attempts (three, and Dask gives up on them). `Worker.close_gracefully`, which the lifetime timer calls, instead
tells the scheduler first: the running tasks go back to it without counting a failure and run again on the
fresh process the nanny starts, which loads its models again before it registers (ingestflow/shell/warmup.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from distributed.core import Status
from tornado.ioloop import PeriodicCallback

from ingestflow import heap
from ingestflow.settings import get_settings

if TYPE_CHECKING:
    from distributed import Worker

log = logging.getLogger(__name__)
CHECK_EVERY_MS = 2000
# A fresh worker's memory is its models, not growth: if they alone cross the line (a limit set too low),
# recycling it at once would only repeat itself with nothing done. It runs this many tasks first.
MIN_TASKS = 10
TRIM_STEP = 64 << 20  # RSS grown since the last trim that makes a busy worker trim again
_closing: set[asyncio.Task[None]] = set()  # keeps the close task referenced until it is done


def dask_setup(worker: Worker) -> None:
    limit = worker.memory_manager.memory_limit
    share = get_settings().dask_recycle_above
    threshold = int(limit * share) if limit and share else None
    trimmed = False  # since the worker last ran a task
    after_trim = 0  # RSS then

    def check() -> None:
        nonlocal trimmed, after_trim
        rss = worker.monitor.get_process_memory()
        busy = worker.state.executing_count or worker.state.long_running
        if (not busy and not trimmed) or (busy and rss > after_trim + TRIM_STEP):
            heap.trim()
            after_trim = rss = worker.monitor.get_process_memory()
        trimmed = not busy
        if threshold is None or _closing or worker.status != Status.running:
            return
        if rss <= threshold or worker.state.executed_count < MIN_TASKS:
            return
        log.warning("worker %s holds %d MiB, above %.0f%% of its %d MiB limit: restarting it gracefully",
                    worker.address, rss >> 20, share * 100, (limit or 0) >> 20)
        task = asyncio.ensure_future(worker.close_gracefully(restart=True, reason="ingestflow-memory-recycle"))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    worker.periodic_callbacks["ingestflow-memory-recycle"] = PeriodicCallback(check, CHECK_EVERY_MS)
