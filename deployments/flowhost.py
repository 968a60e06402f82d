"""The flow host: flow-run processes forked from one that has already imported Prefect and the flows.

Why: each flow run's process spent about 3 CPU s before its flow began, 2.0 of them importing Prefect,
prefect-dask and the flows (`import prefect.engine, flows.batch, ...`: 1.92 user + 0.13 system s here), and a
200-note burst started a few such processes while the two cores also served the uploads. Forked from this host
the imports are already done and their pages shared.

What stays as it was: the Prefect worker still starts one process per flow run (`deployments/flow_start.py`,
stdlib only), watches it and cancels it; the forked process runs `python -m prefect.engine`'s main as that
module would, in a session of its own, with the starter's environment, arguments, working directory and standard
streams; every stage is still a task run of that engine. The starter passes on the worker's signals and ends with
the forked process's status; a process whose starter is gone (killed) is ended too.

Listens on an abstract Unix socket (`INGESTFLOW_FLOW_HOST`, named per stack) and serves only its own user.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import runpy
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36


def entrypoint_modules(project: Path = ROOT) -> list[str]:
    """The modules of prefect.yaml's deployments (`flows/batch.py:ingest_batch` -> `flows.batch`)."""
    spec = yaml.safe_load((project / "prefect.yaml").read_text(encoding="utf-8"))
    paths = {d["entrypoint"].split(":")[0] for d in spec.get("deployments", [])}
    return sorted(p.removesuffix(".py").replace("/", ".") for p in paths)


class Host:
    def __init__(self, name: str, module: str, preload: list[str]) -> None:
        self.name = name
        self.module = module
        self.preload = preload
        self.children: dict[int, socket.socket] = {}  # a forked run's pid -> its starter's connection
        self.listener: socket.socket | None = None

    def start(self) -> None:
        t0 = time.process_time()
        for module in [self.module, *self.preload]:
            importlib.import_module(module)
        # Forked runs whose own children outlive them (none expected) are reaped here, not left as zombies.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        signal.signal(signal.SIGCHLD, self._reap)
        signal.signal(signal.SIGTERM, self._stop)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind("\0" + self.name)
        self.listener.listen(64)
        print(f"flow host {self.name!r}: {len(self.preload) + 1} modules imported in {time.process_time() - t0:.1f} "
              "CPU s; forking flow runs", file=sys.stderr, flush=True)

    def serve_forever(self) -> int:
        """Forks a run per starter; returns only in a forked run, with its exit status."""
        assert self.listener is not None
        while True:
            conn, _ = self.listener.accept()
            try:
                code = self._serve(conn)
            except Exception:
                traceback.print_exc()
                conn.close()
                continue
            if code is not None:
                return code

    def _serve(self, conn: socket.socket) -> int | None:
        """None in the host; in the forked process, the run's exit status once it has run."""
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
        if uid != os.getuid():
            conn.close()
            return None
        message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        if not message and not fds:  # connected and gone: a readiness probe
            conn.close()
            return None
        try:
            request = json.loads(message)
            if len(fds) != 3:
                raise ValueError(f"expected 3 standard streams, got {len(fds)}")
            sys.stdout.flush()
            sys.stderr.flush()
            # A run that ends at once is reaped only after it is known as a child.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            for fd in fds:
                os.close(fd)
            raise
        if pid == 0:
            return self._run(conn, request, fds)
        self.children[pid] = conn
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        for fd in fds:
            os.close(fd)
        return None

    def _run(self, conn: socket.socket, request: dict[str, object], fds: list[int]) -> int:
        """In the forked process: become the flow-run process the starter would have been. Its exit status goes
        back up the stack to a normal interpreter exit, so what Prefect drains on the way out (the run's last logs
        and events) is sent as from `python -m prefect.engine`; the host reaps it and tells the starter."""
        try:
            for sig in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            assert self.listener is not None
            self.listener.close()
            for other in self.children.values():
                other.close()
            self.children.clear()
            os.setsid()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(str(request["cwd"]))
            env = request["env"]
            assert isinstance(env, dict)
            os.environ.clear()
            os.environ.update(env)
            from prefect.context import refresh_global_settings_context

            refresh_global_settings_context()  # Prefect's settings from this run's environment
            argv = request["argv"]
            assert isinstance(argv, list)
            sys.argv = [self.module, *map(str, argv)]
            conn.send(json.dumps({"pid": os.getpid()}).encode())
            threading.Thread(target=_follow_starter, args=(conn,), daemon=True).start()
            runpy.run_module(self.module, run_name="__main__", alter_sys=True)
            return 0
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            return 1

    def _reap(self, _signum: int, _frame: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):  # the starter may be gone
                    conn.send(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
                conn.close()

    def _stop(self, signum: int, _frame: object) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        raise SystemExit(0)


def _follow_starter(conn: socket.socket) -> None:
    """Signals the starter passes on are raised here. Its end without one means it was killed (SIGKILL cannot be
    passed on): the run ends the same way at once, as the killed process would have, rather than winding down
    beside the run that will take its jobs over."""
    while True:
        try:
            message = conn.recv(4096)
        except OSError:
            message = b""
        if not message:
            os.kill(os.getpid(), signal.SIGKILL)
            return
        signum = json.loads(message).get("signal")
        if isinstance(signum, int):
            os.kill(os.getpid(), signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=os.environ.get("INGESTFLOW_FLOW_HOST", ""),
                        help="the abstract socket's name (INGESTFLOW_FLOW_HOST)")
    parser.add_argument("--module", default="prefect.engine", help="what each forked process runs as __main__")
    parser.add_argument("--preload", nargs="*",
                        help="modules imported before forking (default: Prefect's flow engine and deployment steps, "
                        "the PostgreSQL driver, prefect.yaml's flows)")
    args = parser.parse_args(argv)
    if not args.name:
        parser.error("no socket name: set INGESTFLOW_FLOW_HOST or pass --name")
    sys.path.insert(0, str(ROOT))
    # Besides the engine and the flows, what every run imports on its way: Prefect's deployment steps (the engine
    # loads the flow through them) and the PostgreSQL driver (its first session): 0.2 CPU s a run, done here once.
    preload = (["prefect.flow_engine", "prefect.deployments.steps", "psycopg", *entrypoint_modules()]
               if args.preload is None else args.preload)
    host = Host(args.name, args.module, preload)
    host.start()
    sys.exit(host.serve_forever())  # only a forked run gets here


if __name__ == "__main__":
    main()
