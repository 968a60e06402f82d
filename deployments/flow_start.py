"""The command the Prefect worker starts for a flow run: it has the flow host fork the run's process.

Run by path (`python deployments/flow_start.py`, prefect.yaml's `command`), so it imports the standard library
only: about 30 ms of a core against the 2 CPU s of a process that imports Prefect and the flows itself
(deployments/flowhost.py says why and how). It hands the host its environment, arguments, working directory and
standard streams, passes on the signals the worker sends (a cancellation's SIGTERM), and ends with the forked
process's exit status, or by the same signal that ended it, so the worker sees what it would have seen.

Where `INGESTFLOW_FLOW_HOST` is unset or its host does not answer, it becomes `python -m prefect.engine` in place:
a stack without a host runs its flows as before, only slower to start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys


def _engine() -> None:
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])


def _connect(name: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.connect("\0" + name)
    request = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
    started = conn.recv(4096)
    if not started:
        raise ConnectionError("the host closed the connection before starting the process")
    return conn


def main() -> None:
    name = os.environ.get("INGESTFLOW_FLOW_HOST", "")
    if not name:
        _engine()
    try:
        conn = _connect(name)
    except OSError as e:
        print(f"flow host {name!r} did not answer ({e}): starting the flow engine in this process", file=sys.stderr)
        _engine()

    def relay(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"signal": signum}).encode())

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, relay)
    while message := conn.recv(4096):
        code = json.loads(message).get("exit")
        if code is None:
            continue
        if code < 0:  # ended by a signal: end by it too
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        sys.exit(code)
    print("the flow-run process and its host ended without an exit status", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
