"""Issue 26, part 3 on the real stack: a receiver on 127.0.0.1 registered for every event is told of a completed
job, a failed job, a deleted document and one expired by the `retention` deployment. It refuses the first
attempt of each with a 500 and checks every signature; the `notify` deployment (started by the dispatcher)
retries, and each event is accepted exactly once. The deliveries' record says so, and Prefect shows the runs."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _api
from tests.webhook_receiver import Received, receiver

pytestmark = pytest.mark.slow


def _notify_task_runs(prefect_url: str) -> tuple[int, int]:
    """Runs of the `notify` deployment that completed, and their deliver-webhook task runs, as Prefect has them."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId

    from ingestflow.prefect_names import NOTIFY_DEPLOYMENT

    async def read() -> tuple[int, int]:
        # The stack's server by its address: another test may have left this process's Prefect settings elsewhere.
        async with PrefectClient(api=prefect_url) as client:
            deployment = await client.read_deployment_by_name(NOTIFY_DEPLOYMENT)
            runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment.id])))
            completed = [r for r in runs if r.state is not None and r.state.is_completed()]
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[r.id for r in runs]))) if runs else []
            return len(completed), sum(1 for t in tasks if t.name.startswith("deliver "))

    return asyncio.run(read())


def test_every_event_reaches_a_receiver_that_failed_first_exactly_once(stack: Any, tmp_path: Path) -> None:
    from ingestflow.db import Document, session_scope, utcnow

    owner = _api(stack, "webhooks-e2e")
    received = Received(secret="case-system-secret-0123456789")
    with receiver(received) as url:
        hook = owner.http.post("/v1/webhooks", json={"url": url, "secret": received.secret}).json()
        notes = []
        for name in ("kept", "deleted", "expiring"):
            note = tmp_path / f"{name}.md"
            note.write_text(f"# {name}\n\nMarta Novak of Danube Freight called about the {name} invoice.\n")
            notes.append(owner.upload(note).json())
        corrupt = owner.upload_bytes("corrupt.pdf", b"%PDF-1.7\n" + os.urandom(2048) + b"\n%%EOF\n").json()
        for up in notes:
            assert owner.wait_job(up["job_id"])["status"] == "completed"
        assert owner.wait_job(corrupt["job_id"])["status"] == "failed"

        kept, deleted, expiring = (up["document_id"] for up in notes)
        assert owner.http.delete(f"/v1/documents/{deleted}").status_code == 204
        with session_scope(stack.settings.sqlalchemy_url) as db:
            doc = db.get(Document, expiring)
            assert doc is not None
            doc.created_at = utcnow() - timedelta(days=10)
        assert owner.http.put("/v1/retention", json={"default": {"days": 7}}).status_code == 200
        run = subprocess.run([sys.executable, "-m", "ingestflow.shell.cli", "retention"], capture_output=True,
                             text=True, timeout=400, env=dict(os.environ, COLUMNS="200"))
        assert run.returncode == 0, run.stdout + run.stderr
        owner.http.put("/v1/retention", json={})

        t0 = time.monotonic()
        received.wait_for(6, timeout=180)
        print(f"the last event was accepted {time.monotonic() - t0:.1f} s after the retention run ended")

    assert received.bad_signatures == 0
    assert set(received.attempts.values()) == {2} and set(received.accepted.values()) == {1}
    events = {(e["event"], e["document_id"]) for e in received.events.values()}
    assert events == {("job.completed", kept), ("job.completed", deleted), ("job.completed", expiring),
                      ("job.failed", corrupt["document_id"]), ("document.deleted", deleted),
                      ("document.expired", expiring)}
    failed = next(e for e in received.events.values() if e["event"] == "job.failed")
    assert failed["job_id"] == corrupt["job_id"] and failed["error"].startswith("parse failed:")

    log = owner.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
    assert log["total"] == 6
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in log["items"]} == {("delivered", 2, 200)}
    completed_runs, deliver_tasks = _notify_task_runs(stack.settings.prefect_url)
    assert completed_runs >= 1 and deliver_tasks >= 12, (completed_runs, deliver_tasks)  # 6 events x 2 attempts
