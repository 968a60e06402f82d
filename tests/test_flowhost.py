"""The flow host forks the process a flow run's starter asks for (deployments/flowhost.py, flow_start.py).

On a real host process and real starters; what forked runs prove on the stack (every e2e test's flow runs, a
killed flow-run process recovered in test_e2e_jobs.py) is the real-stack tier's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from deployments.flowhost import entrypoint_modules

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "deployments" / "flow_start.py"


def _listening(name: str) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
        try:
            probe.connect("\0" + name)
        except OSError:
            return False
        return True


@pytest.fixture
def host() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    name = f"ingestflow-test-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-m", "deployments.flowhost", "--name", name, "--module",
                             "tests.flowhost_target", "--preload", "json"], cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not _listening(name):
        assert proc.poll() is None and time.monotonic() < deadline, "the flow host did not start"
        time.sleep(0.05)
    yield name, proc
    proc.terminate()
    _out, err = proc.communicate(timeout=10)
    assert b"Traceback" not in err, err.decode()


def _start(name: str, *args: str, cwd: Path, **kw: object) -> subprocess.Popen[bytes]:
    env = dict(os.environ, INGESTFLOW_FLOW_HOST=name, FLOWHOST_MARKER="from-the-starter")
    return subprocess.Popen([sys.executable, str(STARTER), *args], cwd=cwd, env=env, **kw)  # type: ignore[call-overload]


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_the_forked_process_runs_as_the_starter_would(host: tuple[str, subprocess.Popen[bytes]],
                                                      tmp_path: Path) -> None:
    name, proc = host
    run = _start(name, "report", "extra", cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 3, err
    seen = json.loads(out)
    assert seen["argv"] == ["report", "extra"] and seen["cwd"] == str(tmp_path)
    assert seen["marker"] == "from-the-starter"  # the starter's environment, not the host's
    assert seen["ppid"] == proc.pid and seen["pid"] == seen["sid"]  # forked by the host, in a session of its own
    assert b"to stderr" in err  # the starter's standard streams


def test_the_starters_signal_ends_the_run_and_its_status_comes_back(host: tuple[str, subprocess.Popen[bytes]],
                                                                     tmp_path: Path) -> None:
    name, _proc = host
    pid_file = tmp_path / "pid"
    run = _start(name, "sleep", str(pid_file), cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    forked = int(pid_file.read_text())
    run.send_signal(signal.SIGTERM)  # as the worker cancels a run
    assert run.wait(30) == -signal.SIGTERM
    assert _gone(forked, 5)


def test_a_killed_starter_takes_its_run_with_it(host: tuple[str, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    name, _proc = host
    pid_file = tmp_path / "pid"
    run = _start(name, "sleep", str(pid_file), cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.kill()
    run.wait(10)
    assert _gone(int(pid_file.read_text()), 5)


def test_a_probe_that_sends_nothing_is_no_error(host: tuple[str, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    name, proc = host
    assert _listening(name)  # connects and closes, as the stack's readiness check does
    run = _start(name, "report", cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.communicate(timeout=30) and run.returncode == 3 and proc.poll() is None


def test_without_a_host_the_starter_runs_the_engine_itself(tmp_path: Path) -> None:
    run = _start(f"ingestflow-test-none-{uuid.uuid4().hex}", "not-a-flow-run-id", cwd=tmp_path,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _out, err = run.communicate(timeout=60)
    assert b"did not answer" in err
    assert b"Invalid flow run id" in err and run.returncode == 1  # prefect.engine's own answer


def test_the_host_preloads_every_deployments_flow_module() -> None:
    modules = entrypoint_modules()
    assert {"flows.document", "flows.batch", "flows.notify"} <= set(modules)
    assert all((ROOT / (m.replace(".", "/") + ".py")).exists() for m in modules)
