"""Dask worker preload (`dask worker --preload ingestflow.shell.dask_recycle`): an idle worker gives the memory it
freed back to the system, and a worker whose memory still grows past a share of its limit is restarted the way
its lifetime ends.

Why the trim: glibc keeps freed heap for reuse, and deployments/dask.yaml leaves its trim threshold adaptive
(whisper's speed). In bench/soak_bench.py the worker grew 1448 -> 1910 MiB, and one malloc_trim(0) gave 374 MiB
of it back: retained free memory. Trimming once each time the worker falls idle costs stages nothing. It does
not explain all growth (a later soak with it: 1204 -> 1770 MiB over 150 documents); the restart bounds the rest.

Why the restart: Dask's own thresholds do not help a worker whose memory is models and allocator growth rather than task
results. Past 80% of the limit it pauses (takes no new tasks, yet nothing it holds can be spilled, so it stays
paused and the queue stalls); past 95% its nanny kills it, and the tasks it was running count as failed
attempts (three, and Dask gives up on them). `Worker.close_gracefully`, which the lifetime timer calls, instead
tells the scheduler first: the running tasks go back to it without counting a failure and run again on the
fresh process the nanny starts, which loads its models again before it registers (ingestflow/shell/warmup.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from typing import TYPE_CHECKING

from distributed.core import Status
from tornado.ioloop import PeriodicCallback

from ingestflow.settings import get_settings

if TYPE_CHECKING:
    from distributed import Worker

log = logging.getLogger(__name__)
CHECK_EVERY_MS = 2000
# A fresh worker's memory is its models, not growth: if they alone cross the line (a limit set too low),
# recycling it at once would only repeat itself with nothing done. It runs this many tasks first.
MIN_TASKS = 10
_closing: set[asyncio.Task[None]] = set()  # keeps the close task referenced until it is done


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim this way
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def dask_setup(worker: Worker) -> None:
    limit = worker.memory_manager.memory_limit
    share = get_settings().dask_recycle_above
    threshold = int(limit * share) if limit and share else None
    trimmed = False  # since the worker last ran a task

    def check() -> None:
        nonlocal trimmed
        if worker.state.executing_count or worker.state.long_running:
            trimmed = False
        elif not trimmed:
            _malloc_trim()
            trimmed = True
        if threshold is None or _closing or worker.status != Status.running:
            return
        rss = worker.monitor.get_process_memory()
        if rss <= threshold or worker.state.executed_count < MIN_TASKS:
            return
        log.warning("worker %s holds %d MiB, above %.0f%% of its %d MiB limit: restarting it gracefully",
                    worker.address, rss >> 20, share * 100, (limit or 0) >> 20)
        task = asyncio.ensure_future(worker.close_gracefully(restart=True, reason="ingestflow-memory-recycle"))
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    worker.periodic_callbacks["ingestflow-memory-recycle"] = PeriodicCallback(check, CHECK_EVERY_MS)
