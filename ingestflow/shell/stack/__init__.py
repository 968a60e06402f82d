"""The embedded stack on one machine: PostgreSQL, Prefect server, Dask cluster, Chroma, deployments + worker, API.

`ingestflow up` runs it in the foreground; the test suite starts the same stack on other ports.
Every piece is a child process, supervised: one that dies is restarted with backoff while the others keep
running (`supervisor.py`); only Ctrl-C or SIGTERM stops them all, in reverse order. Data lives in data_dir, so
starting again resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from ingestflow.settings import PROJECT_ROOT, Settings
from ingestflow.shell.stack import postgres
from ingestflow.shell.stack.supervisor import Child, Supervisor

BIN = Path(sys.executable).parent


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def gpu_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _terminate(procs: list[psutil.Process]) -> None:
    alive = [p for p in procs if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _gone, still = psutil.wait_procs(alive, timeout=10)
    for p in still:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def _loopback_ca(settings: Settings) -> Path:
    """A trust store of one certificate for Prefect's clients. Prefect builds an SSL context from certifi's
    ~150 roots for every client it makes (30 ms each, two per task run: a fifth of a Dask worker's time under
    a burst of notes, by py-spy), even for the plain-http server on 127.0.0.1 that the local stack runs."""
    import certifi

    path = settings.data_dir / "prefect" / "loopback-ca.pem"
    if not path.exists():
        bundle = Path(certifi.where()).read_text()
        end = "-----END CERTIFICATE-----"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(bundle[bundle.index("-----BEGIN CERTIFICATE-----"):bundle.index(end) + len(end)] + "\n")
    return path


def stack_env(settings: Settings, gpu: bool) -> dict[str, str]:
    env = dict(os.environ)
    if settings.prefect_api_url is None:
        env["PREFECT_API_SSL_CERT_FILE"] = str(_loopback_ca(settings))
    env.update({
        "PREFECT_HOME": str(settings.data_dir / "prefect"),
        "PREFECT_API_URL": settings.prefect_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # Heartbeats let the crash automation notice a flow process that died (NOTES.md: 30 s, Prefect's
        # minimum, and 90 s of silence).
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "PREFECT_UI_API_URL": settings.prefect_url,
        # Prefect's own pool of 5 + 10 waited for connections under a burst (asyncpg TimeoutError upstream:
        # PrefectHQ/prefect#21225); the server is the busiest client of the database here.
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "20",
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "20",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "30",
        "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "30",
        # The worker's default 10 s poll was most of an upload's wait before its flow run started; with flow runs
        # forked by the flow host (0.7 s to start), a 2 s poll still was (flow start 0.75-2.9 s in the ingest
        # bench's batches). Each poll costs the Prefect server: idle for 60 s it spent 1.8 CPU s polled every 2 s,
        # 3.3 every 0.5 s; every 1 s adds about 1% of a core for half a second less of every run's wait.
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        # Nothing here uses late-run marking, pause expiry or the foreman's readiness bookkeeping: fewer
        # background writers competing with the runs on two cores.
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "INGESTFLOW_DATA_DIR": str(settings.data_dir),
        "INGESTFLOW_API_PORT": str(settings.api_port),
        "INGESTFLOW_PREFECT_PORT": str(settings.prefect_port),
        "INGESTFLOW_DASK_PORT": str(settings.dask_port),
        "INGESTFLOW_CHROMA_PORT": str(settings.chroma_port),
        "INGESTFLOW_POSTGRES_PORT": str(settings.postgres_port),
        "INGESTFLOW_GPU_RESOURCE": "true" if gpu else "false",
        "INGESTFLOW_PROJECT_DIR": str(PROJECT_ROOT),
        "INGESTFLOW_FLOW_HOST": flow_host_name(settings),
    })
    # Dask's own defaults for its workers' environment made transcription 1.8x slower than a plain process;
    # deployments/dask.yaml says why and undoes them. A DASK_CONFIG of the operator's own wins.
    env.setdefault("DASK_CONFIG", str(PROJECT_ROOT / "deployments" / "dask.yaml"))
    if settings.embedded_postgres:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = postgres.url(
            settings.data_dir, settings.postgres_port, "prefect", driver="asyncpg")
    return env


def flow_host_name(settings: Settings) -> str:
    """The flow host's abstract socket (deployments/flowhost.py): one per stack, by its data directory."""
    return f"ingestflow-flows-{hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:16]}"


def flow_host_ready(name: str) -> Callable[[], bool]:
    def ready() -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
            try:
                probe.connect("\0" + name)
            except OSError:
                return False
            return True
    return ready


def worker_args(settings: Settings) -> list[str]:
    """`dask worker`'s preloads and bounded memory: the libraries and models imported before the first task
    (warmup.py), Dask's limit (it pauses a worker at 80% and kills it at 95%), a graceful restart at the end of a
    lifetime, and one before the pause when memory grows (dask_recycle.py); Prefect's settings built once per flow
    run's settings rather than at each task run's start (task_context.py)."""
    return ["--preload", "ingestflow.shell.warmup", "--memory-limit", settings.dask_memory_limit,
            "--lifetime", settings.dask_worker_lifetime, "--lifetime-stagger", settings.dask_worker_lifetime_stagger,
            "--lifetime-restart", "--preload", "ingestflow.shell.dask_recycle",
            "--preload", "ingestflow.shell.task_context"]


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so the children are stopped rather than orphaned."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@dataclass
class Stack:
    settings: Settings
    log: Callable[[str], None] = print
    env: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor | None = None

    @property
    def procs(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        return self.supervisor.processes() if self.supervisor else []

    def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        gpu = s.gpu_resource or gpu_available()
        self.env = stack_env(s, gpu)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("PREFECT_", "INGESTFLOW_"))})
        self.supervisor = Supervisor(self.env, s.data_dir / "logs", s.data_dir / "stack.json", self.log)
        _sigterm_as_interrupt()
        try:
            self._start_all(gpu)
        except BaseException:
            self.stop()
            raise
        self.supervisor.supervise()

    def _start_all(self, gpu: bool) -> None:
        s = self.settings
        assert self.supervisor is not None
        start = self.supervisor.start
        ports = [s.prefect_port, s.dask_port, s.chroma_port, s.api_port]
        for port in ports + ([s.postgres_port] if s.embedded_postgres else []):
            if _port_open(port):
                raise RuntimeError(f"port {port} is already in use: is another ingestflow stack running?")
        if s.embedded_postgres:
            cluster = postgres.ensure_cluster(s.data_dir, s.postgres_bin_dir)
            start(Child("postgres", postgres.server_args(cluster, s.postgres_port, s.postgres_bin_dir),
                        lambda: postgres.ready(s.data_dir, s.postgres_port), stop_signal=signal.SIGINT,
                        popen=postgres.popen_user()))
            postgres.ensure_databases(s.data_dir, s.postgres_port)
        self._init_metadata()
        start(Child(
            "prefect-server",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(s.prefect_port)],
            _http_ok(f"{s.prefect_url}/health"),
        ))
        start(Child(
            "dask-scheduler",
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(s.dask_port),
             "--dashboard-address", f"127.0.0.1:{s.dask_port + 1}"],
            lambda: _port_open(s.dask_port),
        ))
        # Processing yields the cores to whoever is waiting on an answer: 100 concurrent uploads during a
        # burst waited behind flow-run start-ups (2-3 CPU s each) and Dask stages.
        nice = ["nice", "-n", str(s.background_nice)] if s.background_nice else []
        worker = [*nice, str(BIN / "dask"), "worker", s.dask_scheduler, "--nworkers", str(s.dask_workers),
                  "--nthreads", str(s.dask_threads_per_worker), "--name", "ingestflow-worker",
                  *worker_args(s)]
        if gpu:
            worker += ["--resources", "GPU=1"]
        # It registers once its preload has imported the stages' libraries and loaded their models (warmup.py).
        start(Child("dask-worker", worker, lambda: self._dask_workers() >= s.dask_workers), timeout=300)
        start(Child(
            "chroma",
            [str(BIN / "chroma"), "run", "--host", "127.0.0.1", "--port", str(s.chroma_port),
             "--path", str(s.data_dir / "chroma")],
            _http_ok(f"http://127.0.0.1:{s.chroma_port}/api/v2/heartbeat"),
        ))
        self._migrate_vectors()
        self._bootstrap()
        # Flow-run processes are forked from it with Prefect and the flows imported (2 CPU s saved per run).
        start(Child("flow-host", [*nice, sys.executable, "-m", "deployments.flowhost"],
                    flow_host_ready(self.env["INGESTFLOW_FLOW_HOST"])))
        # One slot beyond the dispatcher's runs: a notify, backfill or retention run never waits behind a bulk
        # import's runs for a free slot.
        start(Child(
            "prefect-worker",
            [*nice, str(BIN / "prefect"), "worker", "start", "--pool", "ingestflow", "--type", "process",
             "--limit", str(s.worker_limit + 1)],
            lambda: True,
        ))
        start(Child("dispatcher", [*nice, str(BIN / "ingestflow"), "dispatcher"], lambda: True))
        start(Child(
            "api",
            [str(BIN / "uvicorn"), "api.main:app", "--host", s.api_host, "--port", str(s.api_port),
             "--workers", str(s.api_workers)],
            _http_ok(f"http://127.0.0.1:{s.api_port}/health"),
        ))

    def _init_metadata(self) -> None:
        """Schema at head; a data directory from before PostgreSQL brings its SQLite rows along."""
        from ingestflow.db import init_db

        s = self.settings
        init_db(s.sqlalchemy_url)
        if s.embedded_postgres and s.legacy_sqlite.exists():
            from ingestflow.shell.stack.sqlite_import import import_sqlite

            copied = import_sqlite(s.legacy_sqlite, s.sqlalchemy_url)
            self.log(f"  imported {sum(copied.values())} rows from {s.legacy_sqlite} into PostgreSQL: {copied}")

    def _migrate_vectors(self) -> None:
        """A vector store from before per-owner collections is moved into them (`ingestflow migrate-vectors`)."""
        from ingestflow.stores.vector_migration import migrate_vectors

        for report in migrate_vectors(self.settings):
            if report.copied:
                self.log(f"  moved {report.copied} vectors of {len(report.owners)} owner(s) out of the collection "
                         f"{report.legacy!r} into per-owner collections (old one removed: {report.removed})")

    def _dask_workers(self) -> int:
        try:
            from distributed import Client

            with Client(self.settings.dask_scheduler, timeout=2) as c:
                return len(c.scheduler_info(n_workers=-1)["workers"])
        except Exception:
            return 0

    def _bootstrap(self) -> None:
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "deployments.bootstrap"], env=self.env, cwd=PROJECT_ROOT, check=True)
        self.log(f"  {'deployments':<14} ready ({time.monotonic() - t0:.1f}s)")

    def stop(self) -> None:
        if self.supervisor is None:
            return
        # Flow-run processes start in sessions of their own, so signalling the worker's group misses them and
        # they would outlive the stack. Their runs are later marked Crashed and re-dispatched on the next start.
        orphans = [child for _name, proc in self.procs for child in _descendants(proc.pid)
                   if _name == "prefect-worker"]
        self.supervisor.stop_all()
        _terminate(orphans)

    def wait(self) -> None:
        """Supervise until Ctrl-C or SIGTERM: a child that dies is restarted, the others keep running."""
        try:
            while True:  # the supervisor's thread does the watching
                time.sleep(1)
        finally:
            self.stop()
