"""CPU seconds each part of the stack spent over a stretch of a benchmark: which process the time went to
(flow-run processes are the Prefect worker's children, counted once they exit; PostgreSQL's backends are
the postmaster's)."""

from __future__ import annotations

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

    def report(self) -> str:
        end = self._now()
        spent = {k: end.get(k, 0.0) - self.start.get(k, 0.0) for k in end}
        total = sum(spent.values())
        rows = ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        return f"cpu seconds: total {total:.1f} = {rows}"
