"""The distributed layout of docker-compose.yml, as separate processes on 127.0.0.1 (no Docker engine runs
here): one PostgreSQL, a Prefect server, two Prefect workers, a Dask scheduler with a CPU worker and a worker
declaring GPU=1, a Chroma server, two dispatchers (the compose file runs one; a second must be safe) and two API
replicas of two processes each, configured by the settings the compose file sets. The one difference: LadybugDB
instead of Neo4j, which cannot run here (all processes share one machine, so its writer lock holds across them).

Every job must get exactly one flow run per attempt, however the two dispatchers race for the queue."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingestflow.shell.stack import BIN, _http_ok, _port_open, flow_host_ready
from ingestflow.shell.stack.supervisor import Child, Supervisor
from tests.conftest import FIXTURES, Api, _user

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["documents/multi_page.pdf", "documents/word_sample.docx", "documents/powerpoint_sample.pptx",
             "documents/wiki_duck.html", "audio/jfk.flac", "audio/sample_10s.mp3"]


def _database(postgres_server: tuple[Path, int], name: str) -> str:
    from sqlalchemy import create_engine, text

    from ingestflow.shell.stack import postgres

    data_dir, port = postgres_server
    admin = create_engine(postgres.url(data_dir, port, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres.url(data_dir, port, name)


def _compose_env(tmp: Path, postgres_server: tuple[Path, int], base: int) -> dict[str, str]:
    """The `x-ingestflow` environment of docker-compose.yml, with 127.0.0.1 ports for its host names."""
    ingest_db = _database(postgres_server, "distributed")
    prefect_db = _database(postgres_server, "distributed_prefect")
    prefect = f"http://127.0.0.1:{base}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGESTFLOW_", "PREFECT_"))}
    env.update({
        "INGESTFLOW_DATA_DIR": str(tmp / "data"),
        "INGESTFLOW_DATABASE_URL": ingest_db,
        "INGESTFLOW_PREFECT_API_URL": prefect,
        "PREFECT_API_URL": prefect,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": prefect_db.replace("+psycopg", "+asyncpg"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "INGESTFLOW_DASK_ADDRESS": f"tcp://127.0.0.1:{base + 1}",
        "INGESTFLOW_CHROMA_HOST": "127.0.0.1",
        "INGESTFLOW_CHROMA_PORT": str(base + 3),
        "INGESTFLOW_GRAPH_BACKEND": "ladybug",
        "INGESTFLOW_GPU_RESOURCE": "true",
        "INGESTFLOW_PROJECT_DIR": str(ROOT),
        "INGESTFLOW_FLOW_HOST": f"ingestflow-flows-test-{base}",
        "DASK_CONFIG": str(ROOT / "deployments" / "dask.yaml"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    return env


def _flow_run_counts(prefect: str, jobs: list[dict[str, Any]]) -> dict[str, int]:
    """How many flow runs of ingest-document or ingest-batch ran each job: those created with it among their
    parameters, and the batch run that took it from the queue on its way (its batch_flow_run_id, listing it not)."""
    counts = {j["id"]: 0 for j in jobs}
    listed: dict[str, set[str]] = {}
    offset = 0
    with httpx.Client(timeout=30) as http:
        while True:
            page = http.post(f"{prefect}/flow_runs/filter", json={"limit": 200, "offset": offset}).json()
            for run in page:
                params = run["parameters"]
                listed[run["id"]] = set(params.get("job_ids") or [params.get("job_id")])
                for job_id in listed[run["id"]]:
                    if job_id in counts:
                        counts[job_id] += 1
            if len(page) < 200:
                break
            offset += 200
    for job in jobs:
        if job["batch_flow_run_id"] in listed and job["id"] not in listed[job["batch_flow_run_id"]]:
            counts[job["id"]] += 1
    return counts


@pytest.fixture(scope="module")
def distributed(tmp_path_factory: pytest.TempPathFactory,
                postgres_server: tuple[Path, int]) -> Iterator[tuple[dict[str, str], list[str]]]:
    tmp = tmp_path_factory.mktemp("distributed")
    base = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 100
    env = _compose_env(tmp, postgres_server, base)
    apis = [f"http://127.0.0.1:{base + 10 + i}" for i in range(2)]
    for port in (base, base + 1, base + 3, base + 10, base + 11):
        assert not _port_open(port), f"port {port} is in use"
    dask_worker = [str(BIN / "dask"), "worker", env["INGESTFLOW_DASK_ADDRESS"], "--preload", "ingestflow.shell.warmup",
                   "--preload", "ingestflow.shell.task_context"]  # as docker-compose.yml's workers
    sup = Supervisor(env, tmp / "logs", tmp / "stack.json", lambda m: print(m, flush=True))
    try:
        sup.start(Child("prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                           "--port", str(base)], _http_ok(f"{env['PREFECT_API_URL']}/health")))
        sup.start(Child("dask-scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                           str(base + 1), "--dashboard-address", f"127.0.0.1:{base + 2}"],
                        lambda: _port_open(base + 1)))
        sup.start(Child("dask-worker-cpu", [*dask_worker, "--nthreads", "2", "--name", "cpu"], lambda: True))
        sup.start(Child("dask-worker-gpu", [*dask_worker, "--nthreads", "1", "--resources", "GPU=1",
                                            "--name", "gpu"], lambda: True))
        sup.start(Child("chroma", [str(BIN / "chroma"), "run", "--host", "127.0.0.1", "--port", str(base + 3),
                                   "--path", str(tmp / "chroma")],
                        _http_ok(f"http://127.0.0.1:{base + 3}/api/v2/heartbeat")))
        # The schema first, as the first API replica or dispatcher would on its start.
        subprocess.run([sys.executable, "-c", "from ingestflow.db import init_db; from ingestflow.settings "
                        "import get_settings; init_db(get_settings().sqlalchemy_url)"], env=env, check=True)
        subprocess.run([sys.executable, "-m", "deployments.bootstrap"], env=env, cwd=ROOT, check=True)
        # The workers' flow runs forked by a flow host, as docker-compose.yml's worker has one beside it.
        sup.start(Child("flow-host", [sys.executable, "-m", "deployments.flowhost"],
                        flow_host_ready(env["INGESTFLOW_FLOW_HOST"])))
        for i in range(2):
            sup.start(Child(f"prefect-worker-{i}", [str(BIN / "prefect"), "worker", "start", "--pool",
                                                    "ingestflow", "--type", "process", "--limit", "4"],
                            lambda: True))
        for i in range(2):
            sup.start(Child(f"dispatcher-{i}", [str(BIN / "ingestflow"), "dispatcher"], lambda: True))
        for i, url in enumerate(apis):
            sup.start(Child(f"api-{i}", [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port",
                                         url.rsplit(":", 1)[1], "--workers", "2"], _http_ok(f"{url}/health")))
        sup.supervise()
        yield env, apis
    finally:
        sup.stop_all()


def test_two_replicas_give_every_job_exactly_one_flow_run(distributed: tuple[dict[str, str], list[str]],
                                                          tmp_path: Path) -> None:
    env, apis = distributed
    from ingestflow.settings import Settings

    settings = Settings(**{k[len("INGESTFLOW_"):].lower(): v for k, v in env.items()  # type: ignore[arg-type]
                           if k.startswith("INGESTFLOW_")})
    owner, token = _user(settings, "dist")
    replicas = [Api(url, token, owner) for url in apis]
    files = [FIXTURES / p for p in DOCUMENTS]
    for i in range(14):  # small notes too: those go out as batch runs
        note = tmp_path / f"note-{i}.md"
        note.write_text(f"# Note {i}\n\nPriya Natarajan of Contoso met Jonas Berg in Bergen about order {i}.\n")
        files.append(note)
    uploads = [replicas[i % 2].upload(f).json() for i, f in enumerate(files)]
    jobs = [replicas[i % 2].wait_job(u["job_id"], timeout=900) for i, u in enumerate(uploads)]
    assert [j["status"] for j in jobs] == ["completed"] * len(jobs), [(j["status"], j["error"]) for j in jobs]

    runs = _flow_run_counts(env["PREFECT_API_URL"], jobs)
    attempts = {j["id"]: j["attempts"] for j in jobs}
    assert runs == attempts, {j: (runs[j], attempts[j]) for j in runs if runs[j] != attempts[j]}
    batched = sum(1 for j in jobs if j["batch_flow_run_id"])
    print(f"{len(jobs)} jobs through two replicas: {sum(runs.values())} flow runs for {sum(attempts.values())} "
          f"attempts; {batched} jobs ran in batch runs, {len({j['batch_flow_run_id'] for j in jobs} - {None})} "
          f"batch runs")

    from ingestflow.stores.graph import open_graph_store
    from ingestflow.stores.vectors import open_vector_store

    vectors = open_vector_store(settings)
    docs = [replicas[0].get(f"/v1/documents/{u['document_id']}").json() for u in uploads]
    assert all(vectors.count(owner, d["id"]) == d["chunk_count"] > 0 for d in docs), docs
    store = open_graph_store(settings, read_only=True)
    try:
        counts: Any = store.counts(owner)
    finally:
        store.close()
    assert (counts.documents, counts.chunks) == (len(docs), sum(d["chunk_count"] for d in docs)), counts
