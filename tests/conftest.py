"""Shared fixtures. The `stack` fixture starts the real embedded stack (the same code as `ingestflow up`) on
ports of its own, in a temporary data directory, once per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.qa import FIXTURES as FIXTURES  # every test module finds the shared fixtures here

# Tests reach only what they start themselves (issue 21: with `ingestflow up` running, a test that expected Prefect
# to be down found it on the default port). Until a fixture starts a service and points the environment at it,
# every service address is a port bound here and never listened on, so connecting to it is refused at once, and
# the data directory is a fresh one. A developer's own settings (a shell's INGESTFLOW_* or PREFECT_API_URL) do not
# reach the tests either; the tests' own knobs do.
_TEST_KNOBS = ("INGESTFLOW_TEST_PORT_BASE", "INGESTFLOW_FUZZ_EXAMPLES", "INGESTFLOW_FIXTURES", "INGESTFLOW_NEO4J_")
_CLOSED = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_CLOSED.bind(("127.0.0.1", 0))
CLOSED_PORT: int = _CLOSED.getsockname()[1]
for _name in [k for k in os.environ if k.startswith("INGESTFLOW_") and not k.startswith(_TEST_KNOBS)]:
    del os.environ[_name]
# Under pytest-xdist (`-n 2`, the fast tier's command) each worker process takes its own block of test ports,
# so two workers never start servers on the same port; the modules read the base when they are collected.
if (_worker := os.environ.get("PYTEST_XDIST_WORKER", "")).startswith("gw"):
    os.environ["INGESTFLOW_TEST_PORT_BASE"] = str(
        int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 500 * (1 + int(_worker[2:])))
_DATA = tempfile.mkdtemp(prefix="ingestflow-tests-")
atexit.register(shutil.rmtree, _DATA, ignore_errors=True)
os.environ.update({f"INGESTFLOW_{name}_PORT": str(CLOSED_PORT)
                   for name in ("API", "CHROMA", "DASK", "PREFECT", "POSTGRES")})
os.environ.update(INGESTFLOW_DATA_DIR=_DATA, PREFECT_API_URL=f"http://127.0.0.1:{CLOSED_PORT}/api",
                  PREFECT_HOME=str(Path(_DATA) / "prefect"))

TERMINAL = {"completed", "failed", "cancelled"}


class Api:
    """One owner's view of the API."""

    def __init__(self, base_url: str, key: str, user_id: str = "") -> None:
        self.user_id = user_id
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def upload(self, path: Path, **form: str) -> httpx.Response:
        with path.open("rb") as fh:
            return self.http.post("/v1/documents", files={"file": (path.name, fh)}, data=form)

    def upload_bytes(self, name: str, data: bytes) -> httpx.Response:
        return self.http.post("/v1/documents", files={"file": (name, data)})

    def get(self, url: str, **params: Any) -> httpx.Response:
        return self.http.get(url, params=params)

    def wait_job(self, job_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.http.get(f"/v1/jobs/{job_id}")
            if r.status_code == 503:  # a store away for a moment: a client asks again, as Retry-After says
                time.sleep(float(r.headers.get("retry-after", "1")))
                continue
            job = r.json()
            if job["status"] in TERMINAL:
                return job
            time.sleep(1)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}")


@contextmanager
def _server_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A folder for servers that run as another user (PostgreSQL) outside pytest's own: every pytest session
    sets /tmp/pytest-of-<user> back to 0700 when it starts, so a second run (the fast tier beside the slow one)
    took PostgreSQL's way to its cluster mid-run and it stopped ("could not open file .../pg_control:
    Permission denied"). Its logs are kept in pytest's folder; the rest goes at the end."""
    path = Path(tempfile.mkdtemp(prefix=f"ingestflow-{name}-"))
    try:
        yield path
    finally:
        if (path / "logs").is_dir():
            shutil.copytree(path / "logs", tmp_path_factory.mktemp(f"{name}-logs"), dirs_exist_ok=True)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with _server_dir(tmp_path_factory, "stack") as data_dir:
        yield from _running_stack(data_dir)


def _running_stack(data_dir: Path) -> Iterator[Any]:
    from ingestflow.settings import Settings
    from ingestflow.shell.stack import Stack

    # Ports of its own, so a running `ingestflow up` (or another checkout's test run) is left alone.
    base = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000"))
    ports = {"INGESTFLOW_API_PORT": str(base), "INGESTFLOW_CHROMA_PORT": str(base + 1),
             "INGESTFLOW_DASK_PORT": str(base + 10), "INGESTFLOW_PREFECT_PORT": str(base + 20),
             "INGESTFLOW_POSTGRES_PORT": str(base + 30)}
    os.environ.update(ports, INGESTFLOW_DATA_DIR=str(data_dir))
    from ingestflow.settings import get_settings

    get_settings.cache_clear()
    settings = Settings()
    stack = Stack(settings, log=lambda m: print(m, flush=True))
    t0 = time.monotonic()
    stack.start()
    print(f"stack up in {time.monotonic() - t0:.1f}s", flush=True)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A real PostgreSQL server of its own (the same code as the stack's; ~2 s), for the fast tier."""
    # A comma and a space in its path, as a user's data directory may have (PostgreSQL reads its socket directory as
    # a list): every run of the fast tier starts its server there.
    with _server_dir(tmp_path_factory, "pg, data") as data_dir:
        yield from _running_postgres(data_dir)


def _running_postgres(data_dir: Path) -> Iterator[tuple[Path, int]]:
    import subprocess

    from ingestflow.shell.stack import postgres

    port = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 40
    cluster = postgres.ensure_cluster(data_dir)
    proc = subprocess.Popen(postgres.server_args(cluster, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, **postgres.popen_user())  # type: ignore[call-overload]
    deadline = time.monotonic() + 30
    while not postgres.ready(data_dir, port):
        assert proc.poll() is None and time.monotonic() < deadline, "PostgreSQL did not start"
        time.sleep(0.2)
    postgres.ensure_databases(data_dir, port)
    yield data_dir, port
    proc.send_signal(2)  # fast shutdown
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def chroma_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the fast tier's Chroma server keeps its data."""
    return tmp_path_factory.mktemp("chroma")


@pytest.fixture(scope="session")
def chroma_server(chroma_data: Path) -> Iterator[int]:
    """A real Chroma server for the fast tier, started as the stack starts it (~1 s); its port."""
    import subprocess
    import sys

    port = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 45
    proc = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--host", "127.0.0.1", "--port",
                             str(port), "--path", str(chroma_data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_answering(proc, f"http://127.0.0.1:{port}/api/v2/heartbeat", "Chroma")
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def wait_answering(proc: Any, url: str, what: str, timeout_s: float = 60) -> None:
    """Until `url` answers 200; fails if the process that should answer exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.2)


def fresh_database(postgres_server: tuple[Path, int], label: str) -> str:
    """A new, empty database on the shared server, at the latest schema; its URL."""
    import re

    from sqlalchemy import create_engine, text

    from ingestflow.db import init_db
    from ingestflow.shell.stack import postgres

    data_dir, port = postgres_server
    name = "t_" + re.sub(r"\W", "_", label.lower())[:50]
    admin = create_engine(postgres.url(data_dir, port, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = postgres.url(data_dir, port, name)
    init_db(url)
    return url


@pytest.fixture
def pg_url(postgres_server: tuple[Path, int], request: pytest.FixtureRequest) -> str:
    """A fresh database on the shared server for one test."""
    return fresh_database(postgres_server, request.node.name)


def _key(settings: Any, user: str) -> str:
    return _user(settings, user)[1]


def _user(settings: Any, name: str) -> tuple[str, str]:
    from ingestflow.auth import create_key
    from ingestflow.db import session_scope

    with session_scope(settings.sqlalchemy_url) as db:
        user, key = create_key(db, name)
        return user.id, key


def owner_api(settings: Any, name: str, port: int) -> Api:
    """A new owner's view of the API served on `port` over the database of `settings`."""
    user_id, key = _user(settings, name)
    return Api(f"http://127.0.0.1:{port}", key, user_id)


def _api(stack: Any, name: str) -> Api:
    return owner_api(stack.settings, name, stack.settings.api_port)


# Each test module gets owners of its own, so what one module uploads never shows up in another's counts.
@pytest.fixture(scope="module")
def alice(stack: Any, request: pytest.FixtureRequest) -> Api:
    return _api(stack, f"alice-{request.module.__name__}")


@pytest.fixture(scope="module")
def bob(stack: Any, request: pytest.FixtureRequest) -> Api:
    return _api(stack, f"bob-{request.module.__name__}")


def write_wav(path: Path, pcm: bytes, rate: int = 16_000) -> Path:
    """16-bit mono PCM as a WAV file (the tests' way to make a recording of a given shape from a fixture)."""
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


@contextmanager
def api_processes(ports: list[int], env: dict[str, str]) -> Iterator[None]:
    """Real API processes (uvicorn, as `ingestflow up` or a replica runs it) on `ports` with the environment
    `env`, each answering /health before this yields; stopped at the end."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port",
                               str(port), "--lifespan", "off", "--log-level", "warning"], env=env)
             for port in ports]
    try:
        for proc, port in zip(procs, ports, strict=True):
            wait_answering(proc, f"http://127.0.0.1:{port}/health", f"the API on port {port}")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


@contextmanager
def served_app(request: pytest.FixtureRequest, port: int, **env: str) -> Iterator[Any]:
    """The real app served by uvicorn on `port` (so a client can really hang up mid-body) over a fresh database
    named after the test module, on the shared PostgreSQL and Chroma servers, with INGESTFLOW_<name> settings from
    `env`; yields the settings. No lifespan: the schema is already at head."""
    import threading

    import uvicorn

    from api.main import create_app
    from ingestflow.settings import get_settings

    module = request.module.__name__
    url = fresh_database(request.getfixturevalue("postgres_server"), module)
    data_dir = request.getfixturevalue("tmp_path_factory").mktemp(f"{module}-data")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"DATABASE_URL": url, "DATA_DIR": str(data_dir),
                            "CHROMA_PORT": str(request.getfixturevalue("chroma_server")), **env}.items():
            mp.setenv(f"INGESTFLOW_{name}", value)
        get_settings.cache_clear()
        server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, lifespan="off",
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield get_settings()
        server.should_exit = True
        thread.join(timeout=10)
    get_settings.cache_clear()
