"""Benchmark: what a stage's Prefect task run costs to start on the stack's Dask worker, against a plain Dask task.

    .venv/bin/python bench/task_start_bench.py [--tasks 200]

1. In a process with the stack's settings: Prefect's `hydrated_context` (what a task run on a Dask worker enters
   first) with a flow's serialized context, as Prefect 3.8.8 builds it and with ingestflow/shell/task_context.py's
   reuse, as a ratio.
2. On a stack of its own: a flow submits a no-op task (NO_CACHE, no result kept, as the stages are) `--tasks`
   times in turn to the stack's Dask worker, then again serializing its settings once (task_context.py's flow
   side, as flows/run.py installs it); then the same count of plain Dask tasks. Submit to the task's body and
   submit to its result back in the flow, p50/p90, and their ratio to the plain task.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, bench_stack

sys.path.insert(0, str(ROOT))

WARM = 10  # first tasks left out: connections and imports


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9)]


def hydration(rounds: int = 50) -> None:
    import prefect.context
    from prefect.context import hydrated_context, serialize_context

    from ingestflow.shell import task_context

    serialized = serialize_context()

    def timed() -> float:
        t0 = time.perf_counter()
        for _ in range(rounds):
            with hydrated_context(serialized):
                pass
        return (time.perf_counter() - t0) / rounds * 1000

    original = prefect.context.SettingsContext
    plain = timed()
    task_context.install()
    try:
        reused = timed()
    finally:
        prefect.context.SettingsContext = original
    print(f"hydrated_context in process: Prefect {plain:.1f} ms, reused settings {reused:.1f} ms "
          f"({plain / reused:.1f}x faster)")


def serialization(rounds: int = 50) -> None:
    """The flow side: what each task run's submission serializes (Prefect's serialize_context), with and without
    task_context.install_flow_side. Installed for the rest of the process."""
    from prefect.context import serialize_context

    from ingestflow.shell import task_context

    def timed() -> float:
        t0 = time.perf_counter()
        for _ in range(rounds):
            serialize_context()
        return (time.perf_counter() - t0) / rounds * 1000

    plain = timed()
    task_context.install_flow_side()
    once = timed()
    print(f"serialize_context in process: Prefect {plain:.1f} ms, settings serialized once {once:.1f} ms "
          f"({plain / once:.1f}x faster)")


def on_stack(tasks: int) -> None:
    from ingestflow.shell.stack import stack_env

    with bench_stack() as (settings, _base, _key, _stack):
        env = {**stack_env(settings, gpu=False), "BENCH_DASK": settings.dask_scheduler, "BENCH_TASKS": str(tasks)}
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--probe"], env=env, cwd=ROOT, check=True,
                       timeout=900)


def probe() -> None:
    """Run in a process of its own with the stack's Prefect settings in its environment."""
    hydration()
    from distributed import Client
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect_dask import DaskTaskRunner

    address, count = os.environ["BENCH_DASK"], int(os.environ["BENCH_TASKS"])

    @task(cache_policy=NO_CACHE, persist_result=False)
    def noop(_submitted: float) -> float:
        return time.time()

    def plain(_submitted: float) -> float:
        return time.time()

    @flow(task_runner=DaskTaskRunner(address=address))  # type: ignore[arg-type]
    def submit_in_turn() -> tuple[list[float], list[float]]:
        to_body, to_result = [], []
        for i in range(count + WARM):
            t0 = time.time()
            started = noop.submit(t0).result()
            if i >= WARM:
                to_body.append(started - t0)
                to_result.append(time.time() - t0)
        return to_body, to_result

    runs = {"Prefect task": submit_in_turn()}
    serialization()  # from here on the flow serializes its settings once (as flows/run.py's runs do)
    runs["Prefect task, settings serialized once"] = submit_in_turn()
    client = Client(address)
    plain_body, plain_result = [], []
    for i in range(count + WARM):
        t0 = time.time()
        started = client.submit(plain, t0, pure=False).result()
        if i >= WARM:
            plain_body.append(started - t0)
            plain_result.append(time.time() - t0)
    client.close()
    for label, (body, result) in runs.items():
        for name, prefect_s, dask_s in (("submit -> body", body, plain_body),
                                        ("submit -> result", result, plain_result)):
            (p50, p90), (d50, d90) = quantiles(prefect_s), quantiles(dask_s)
            print(f"{name:17} {label} p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms; plain Dask task p50 "
                  f"{d50 * 1000:.0f} ms, p90 {d90 * 1000:.0f} ms ({p50 / d50:.1f}x at p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe()
        return
    on_stack(args.tasks)


if __name__ == "__main__":
    main()
