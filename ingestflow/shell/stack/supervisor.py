"""A small supervisor over the stack's child processes: a child that exits is started again with backoff
while the others keep running; its state (restarts, last exit) is written to a JSON file that
`GET /health/detailed` and `ingestflow doctor` read.

A loop over subprocess handles rather than supervisord: the children already are plain processes started by
this code with the right environment, and the stack must stop with the `ingestflow up` that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ingestflow.settings import PROJECT_ROOT

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# A child that ran this long before dying starts again at the shortest backoff.
HEALTHY_AFTER_S = 60.0


@dataclass
class Child:
    name: str
    args: list[str]
    ready: Callable[[], bool]
    stop_signal: signal.Signals = signal.SIGTERM
    popen: dict[str, Any] = field(default_factory=dict)


class ProcessState(BaseModel):
    """One supervised process, as `GET /health/detailed` shows it."""

    name: str
    pid: int | None
    state: str  # "running" | "restarting" | "stopped"
    restarts: int = 0
    started_at: datetime | None = None
    last_exit_code: int | None = None
    last_exit_at: datetime | None = None


def read_states(path: Path) -> list[ProcessState]:
    try:
        return [ProcessState.model_validate(s) for s in json.loads(path.read_text())]
    except (OSError, ValueError):
        return []


@dataclass
class _Running:
    child: Child
    proc: subprocess.Popen[bytes]
    state: ProcessState
    started: float
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    def __init__(self, env: dict[str, str], logs: Path, state_file: Path, log: Callable[[str], None]) -> None:
        self.env, self.logs, self.state_file, self.log = env, logs, state_file, log
        self.children: list[_Running] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def supervise(self, interval_s: float = 1.0) -> None:
        """Watch the children from a background thread until stop_all, whoever started the stack."""

        def loop() -> None:
            while not self._stopping.wait(interval_s):
                self.tick()

        self._thread = threading.Thread(target=loop, name="ingestflow-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, child: Child) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = (self.logs / f"{child.name}.log").open("ab")
        return subprocess.Popen(child.args, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                start_new_session=True, **child.popen)

    def start(self, child: Child, timeout: float = 120) -> None:
        """Start a child and wait until it is ready; a child that cannot start stops the start-up."""
        proc = self._spawn(child)
        running = _Running(child, proc, ProcessState(name=child.name, pid=proc.pid, state="running",
                                                     started_at=datetime.now(UTC)), time.monotonic())
        self.children.append(running)
        log_file = self.logs / f"{child.name}.log"
        deadline = time.monotonic() + timeout
        while not child.ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited with {proc.returncode}; see {log_file}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s; see {log_file}")
            time.sleep(0.3)
        self._write()
        self.log(f"  {child.name:<14} ready")

    def processes(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        return [(r.child.name, r.proc) for r in self.children]

    def tick(self) -> None:
        """Notice exits and start what is due; never blocks on a child's readiness."""
        with self._lock:
            if not self._stopping.is_set():
                self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        changed = False
        for r in self.children:
            if r.restart_at is None and r.proc.poll() is not None:
                code = r.proc.returncode
                # What it left behind in its own session (PostgreSQL's backends, a server's workers) would
                # hold its port or shared memory against the restart.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(r.proc.pid, signal.SIGKILL)
                r.failures = 0 if now - r.started > HEALTHY_AFTER_S else r.failures + 1
                delay = BACKOFF_S[min(r.failures, len(BACKOFF_S) - 1)]
                r.restart_at = now + delay
                r.state.state, r.state.pid = "restarting", None
                r.state.last_exit_code, r.state.last_exit_at = code, datetime.now(UTC)
                self.log(f"  {r.child.name:<14} exited with {code}; restarting in {delay:.0f}s "
                         f"(restart {r.state.restarts + 1})")
                changed = True
            elif r.restart_at is not None and now >= r.restart_at:
                r.proc = self._spawn(r.child)
                r.started, r.restart_at = now, None
                r.state.restarts += 1
                r.state.state, r.state.pid, r.state.started_at = "running", r.proc.pid, datetime.now(UTC)
                self.log(f"  {r.child.name:<14} restarted (pid {r.proc.pid})")
                changed = True
        if changed:
            self._write()

    def stop_all(self) -> None:
        self._stopping.set()
        with self._lock:
            self._stop_all()

    def _stop_all(self) -> None:
        for r in reversed(self.children):
            if r.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    if r.child.stop_signal == signal.SIGTERM:
                        os.killpg(r.proc.pid, signal.SIGTERM)
                    else:  # e.g. PostgreSQL: only its postmaster, which shuts its backends down itself
                        r.proc.send_signal(r.child.stop_signal)
            try:
                r.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(r.proc.pid, signal.SIGKILL)
                r.proc.wait()
            r.state.state, r.state.pid = "stopped", None
            self.log(f"  {r.child.name:<14} stopped")
        self._write()
        self.children.clear()

    def _write(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([r.state.model_dump(mode="json") for r in self.children]))
        tmp.replace(self.state_file)
