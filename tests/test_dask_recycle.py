"""Bounded memory on the Dask workers: a worker is restarted gracefully when its memory grows past its share of
the limit (ingestflow/shell/dask_recycle.py) or its lifetime ends, and the task it was running runs again on the
fresh process instead of failing. The first test uses a real local cluster with a nanny (fast tier); the second
the stack's own worker, as `ingestflow up` starts it (slow tier)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from ingestflow.shell.dask_recycle import MIN_TASKS
from tests.conftest import FIXTURES, Api, _api

_HELD: list[bytes] = []  # what a "leaking" task keeps alive in the worker process


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _grow_then_work(log: str, grow: int, work_s: float) -> int:
    """Its first run grows the worker by `grow` bytes for good, then works on (long enough for the recycle to
    come mid-task); a run again, on the fresh process, returns at once. Every run logs its process."""
    first = not Path(log).exists()
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    if first:
        _HELD.append(b"x" * grow)  # touched pages: resident, as a real leak would be
        time.sleep(work_s)
    return os.getpid()


def test_a_worker_past_its_memory_share_restarts_and_its_running_task_runs_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import Client, LocalCluster

    monkeypatch.setenv("INGESTFLOW_DASK_RECYCLE_ABOVE", "0.7")
    limit = 1 << 30
    with LocalCluster(n_workers=1, threads_per_worker=1, memory_limit=limit, processes=True,
                      preload=["ingestflow.shell.dask_recycle"], dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.gather(client.map(abs, range(MIN_TASKS)))  # a fresh worker is never recycled: these age it
        first_pid = client.submit(os.getpid, pure=False).result()
        # To 75% of the limit: past the 70% share, short of Dask's own pause (80%) and kill (95%).
        grow = int(0.75 * limit) - client.submit(_rss, pure=False).result()
        log = tmp_path / "runs.log"
        t0 = time.monotonic()
        pid = client.submit(_grow_then_work, str(log), grow, 8.0, pure=False).result(timeout=300)
        took = time.monotonic() - t0
        runs = [int(line) for line in log.read_text().split()]
        print(f"\nrecycled mid-task: runs in processes {runs}, result after {took:.1f} s")
        assert runs == [first_pid, pid] and pid != first_pid  # ran again on the fresh process, and only there
        assert client.submit(_rss, pure=False).result() < 0.7 * limit  # the fresh one does not hold the growth


@pytest.fixture(scope="module")
def owner(stack: Any) -> Api:
    return _api(stack, "worker-recycle")


@pytest.mark.slow
def test_the_stack_worker_is_bounded_and_survives_its_lifetime_restart(stack: Any, owner: Api) -> None:
    """The lifetime timer's own call (Worker.close_gracefully) mid-batch: every document completes, on a new
    worker process that the nanny started because the stack asked for --lifetime-restart."""
    from dask.utils import parse_bytes, parse_timedelta
    from distributed import Client

    settings = stack.settings
    with Client(settings.dask_scheduler, timeout=30) as dask:
        (address, info), = dask.scheduler_info(n_workers=-1)["workers"].items()
        assert info["memory_limit"] == parse_bytes(settings.dask_memory_limit)
        lifetime, restart, watched = dask.run(lambda dask_worker: (
            dask_worker.lifetime, dask_worker.lifetime_restart,
            "ingestflow-memory-recycle" in dask_worker.periodic_callbacks))[address]
        stagger = parse_timedelta(settings.dask_worker_lifetime_stagger)
        assert abs(lifetime - parse_timedelta(settings.dask_worker_lifetime)) <= stagger and restart and watched
        old_pid = dask.run(os.getpid)[address]

        notes = [(f"recycle-{i}.md", f"# Recycle {i}\n\nMei Chen met Lukas Brandt in Rotterdam, item {i}.\n"
                  .encode()) for i in range(6)]
        audio = [("recycle-jfk.flac", (FIXTURES / "audio" / "jfk.flac").read_bytes() + b"recycle")]
        jobs = [owner.upload_bytes(name, data).json()["job_id"] for name, data in notes + audio]
        deadline = time.monotonic() + 300
        while not any(owner.get(f"/v1/jobs/{j}").json()["status"] == "running" for j in jobs):
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.5)

        async def lifetime_reached(dask_worker: Any) -> None:
            await dask_worker.close_gracefully(reason="worker-lifetime-reached")

        dask.run(lifetime_reached, workers=[address], wait=False)
        results = [owner.wait_job(j, timeout=900) for j in jobs]
        assert [r["status"] for r in results] == ["completed"] * len(jobs), [r.get("error") for r in results]
        dask.wait_for_workers(1, timeout=120)
        new_pids = list(dask.run(os.getpid).values())
        assert new_pids and old_pid not in new_pids
