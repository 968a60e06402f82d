"""CPU seconds each part of the stack spent over a stretch of a benchmark: which process the time went to
(flow-run processes are the Prefect worker's children, counted once they exit; PostgreSQL's backends are
the postmaster's)."""

from __future__ import annotations

import time
from typing import Any

import psutil


def _cpu(pid: int, children: bool = True) -> float:
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        if not children:
            return t.user + t.system
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            with_child = child.cpu_times()
            total += with_child.user + with_child.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


class CpuMeter:
    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        now = {name: _cpu(proc.pid) for name, proc in self.stack.procs}
        now["bench (this process)"] = _cpu(psutil.Process().pid, children=False)  # the stack is its children
        return now

    def spent(self) -> dict[str, float]:
        end = self._now()
        return {k: end.get(k, 0.0) - self.start.get(k, 0.0) for k in end}

    def report(self) -> str:
        spent = self.spent()
        total = sum(spent.values())
        rows = ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        return f"cpu seconds: total {total:.1f} = {rows}"


def settle(stack: Any, idle_cpu_s: float = 0.05, window_s: float = 0.5, timeout_s: float = 20.0) -> float:
    """Wait until the stack is quiet (its processes spent under `idle_cpu_s` over `window_s`): a job's status is
    final before its flow run has ended (the run's last state writes, its process's exit). Seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        meter = CpuMeter(stack)
        time.sleep(window_s)
        spent = meter.spent()
        spent.pop("bench (this process)", None)
        if sum(spent.values()) < idle_cpu_s:
            break
    return time.monotonic() - t0
