"""A throwaway stack for benchmarks: its own ports and data directory, stopped on exit."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextmanager
def bench_stack(keep: bool = False, data: Path | None = None) -> Iterator[tuple[Any, str, str, Any]]:
    """Yields (settings, base_url, api_key, stack). `data`: the stack's data directory, kept (a stack started on it
    again finds what an earlier run stored)."""
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)
        keep = True
    data_dir = data or Path(tempfile.mkdtemp(prefix="ingestflow-bench-"))
    # Ports of its own (INGESTFLOW_BENCH_PORT_BASE), so two benchmarks or a test run can share a machine.
    base = int(os.environ.get("INGESTFLOW_BENCH_PORT_BASE", "28000"))
    os.environ.update(INGESTFLOW_DATA_DIR=str(data_dir), INGESTFLOW_API_PORT=str(base),
                      INGESTFLOW_CHROMA_PORT=str(base + 1), INGESTFLOW_DASK_PORT=str(base + 10),
                      INGESTFLOW_PREFECT_PORT=str(base + 20), INGESTFLOW_POSTGRES_PORT=str(base + 30))
    from ingestflow.auth import create_key
    from ingestflow.db import session_scope
    from ingestflow.settings import Settings
    from ingestflow.shell.stack import Stack

    settings = Settings()
    stack = Stack(settings, log=lambda m: None)
    t0 = time.perf_counter()
    stack.start()
    print(f"stack start: {time.perf_counter() - t0:.1f} s")
    with session_scope(settings.sqlalchemy_url) as db:
        key = create_key(db, "bench")[1]
    try:
        yield settings, f"http://127.0.0.1:{settings.api_port}", key, stack
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def wait_job(base: str, key: str, job_id: str, timeout: float = 900, poll_s: float = 0.2) -> dict[str, Any]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = http.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return dict(job)
            time.sleep(poll_s)
    raise TimeoutError(job_id)
