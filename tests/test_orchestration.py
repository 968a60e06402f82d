"""Fast tier: dispatch, fairness, exactly-once claims, re-queue on orchestrator failures, the stage registry,
the SQLite import and the supervisor, in-process against a real PostgreSQL server (no Prefect, no Dask)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ingestflow.db import Document, Job, JobStatus, User, session_scope, utcnow
from ingestflow.settings import Settings, get_settings


@pytest.fixture
def settings(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("INGESTFLOW_DATABASE_URL", pg_url)
    monkeypatch.setenv("INGESTFLOW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield Settings(worker_limit=4, dispatch_batch_size=20)
    get_settings.cache_clear()


def _owner(url: str, name: str, jobs: int) -> list[str]:
    ids = []
    with session_scope(url) as db:
        user = User(name=name)
        db.add(user)
        db.flush()
        for i in range(jobs):
            doc = Document(owner_id=user.id, sha256=f"{name}{i:060d}"[:64], filename=f"{i}.md", title=f"{i}",
                           kind="text", format="md", mime_type="text/markdown", size_bytes=1)
            db.add(doc)
            db.flush()
            job = Job(document_id=doc.id, owner_id=user.id, kind="text")
            db.add(job)
            db.flush()
            ids.append(job.id)
    return ids


def test_a_second_owner_is_not_starved_by_a_bulk_import(settings: Settings) -> None:
    from ingestflow.jobs.dispatcher import _claim

    bulk = _owner(settings.sqlalchemy_url, "bulk", 200)
    single = _owner(settings.sqlalchemy_url, "single", 1)
    first = _claim(settings)
    second = _claim(settings)
    assert first is not None and second is not None
    assert first.job_ids == bulk[:20]  # the oldest waiting job's owner goes first, a batch of its jobs
    assert second.job_ids == single  # then the owner with nothing in flight, ahead of the bulk's next batch
    third, fourth, fifth = _claim(settings), _claim(settings), _claim(settings)
    assert third is not None and fourth is not None
    assert third.job_ids == bulk[20:40] and fourth.job_ids == bulk[40:60]
    assert fifth is None  # four runs in flight: the worker's limit


def test_one_owner_never_holds_every_run_slot(settings: Settings) -> None:
    from ingestflow.jobs.dispatcher import _claim

    _owner(settings.sqlalchemy_url, "bulk", 200)
    claims = [_claim(settings) for _ in range(5)]
    assert [c is not None for c in claims] == [True, True, True, False, False]


def test_concurrent_dispatchers_never_claim_the_same_job(settings: Settings) -> None:
    from ingestflow.jobs.dispatcher import _claim

    _owner(settings.sqlalchemy_url, "a", 30)
    _owner(settings.sqlalchemy_url, "b", 30)
    _owner(settings.sqlalchemy_url, "c", 30)
    claimed: list[list[str]] = []
    barrier = threading.Barrier(4)

    def replica() -> None:
        barrier.wait()
        claim = _claim(settings)
        if claim:
            claimed.append(claim.job_ids)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [j for ids in claimed for j in ids]
    assert flat and len(flat) == len(set(flat))


def test_a_run_that_lost_its_job_cannot_start_or_finish_it(settings: Settings) -> None:
    from ingestflow.jobs.dispatcher import _claim
    from ingestflow.jobs.lifecycle import finish_job, start_job

    [job_id] = _owner(settings.sqlalchemy_url, "k", 1)
    claim = _claim(settings)
    assert claim is not None
    assert start_job(job_id, "some-older-key", "run-1") is None
    started = start_job(job_id, claim.key, "run-2")
    assert started is not None and started[0].id
    finish_job(job_id, "some-older-key")
    with session_scope(settings.sqlalchemy_url) as db:
        assert db.get(Job, job_id).status == JobStatus.running  # type: ignore[union-attr]
    finish_job(job_id, claim.key)
    with session_scope(settings.sqlalchemy_url) as db:
        assert db.get(Job, job_id).status == JobStatus.completed  # type: ignore[union-attr]


def test_orchestrator_failures_requeue_without_blaming_the_document(settings: Settings) -> None:
    from ingestflow.jobs.dispatcher import _apply_verdicts, _claim, _pending

    [job_id] = _owner(settings.sqlalchemy_url, "infra", 1)
    claim = _claim(settings)
    assert claim is not None
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        assert job is not None
        job.dispatched_at = utcnow() - timedelta(seconds=30)
        job.flow_run_id = "00000000-0000-0000-0000-000000000001"
    assert [p.job_id for p in _pending(settings)] == [job_id]
    _apply_verdicts(settings, {job_id: (claim.key, "FAILED", "503 Service Unavailable")})
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        assert job is not None
        assert job.status == JobStatus.queued and job.error is None and job.dispatch_key is None
        assert job.infra_retries == 1 and "503" in (job.infra_note or "")
        assert job.resume and job.dispatch_after is not None and job.dispatch_after > utcnow()
    # A verdict about a dispatch the job has left behind changes nothing.
    _apply_verdicts(settings, {job_id: (claim.key, "CRASHED", "")})
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        assert job is not None and job.infra_retries == 1
        # Bounded: past the limit the job stops, retryable, still with no error about the document.
        job.infra_retries = settings.max_infra_retries
        job.dispatch_key = "k2"
    _apply_verdicts(settings, {job_id: ("k2", "CRASHED", "no heartbeat")})
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        assert job is not None
        assert job.status == JobStatus.failed and job.error is None and job.error_retryable is True
        assert "gave up" in (job.infra_note or "")


def test_a_run_whose_process_never_started_counts_as_crashed() -> None:
    """Pending past PENDING_AT_MOST means the process died before reading its run (and the worker's report of
    it failed, as when the database restarts under the Prefect server); no heartbeat will ever say so."""
    from prefect.states import Cancelled, Completed, Crashed, Pending, Running, Scheduled

    from ingestflow.jobs.dispatcher import PENDING_AT_MOST, verdict_of

    now = utcnow()
    late = now + PENDING_AT_MOST + timedelta(seconds=1)
    assert verdict_of(Pending(), now) is None
    verdict = verdict_of(Pending(), late)
    assert verdict is not None and verdict[0] == "CRASHED" and "never started" in verdict[1]
    # Only Pending: a run waiting for a free worker (Scheduled) or working (Running, watched by heartbeats)
    # may take as long as it needs.
    assert verdict_of(Scheduled(), late) is None and verdict_of(Running(), late) is None
    assert verdict_of(None, late) is None
    assert verdict_of(Crashed(message="no heartbeat"), now) == ("CRASHED", "no heartbeat")
    assert verdict_of(Completed(), now) == ("COMPLETED", "")
    assert verdict_of(Cancelled(), now) == ("CANCELLED", "")


def test_a_job_whose_run_was_never_recorded_goes_back_to_the_queue(settings: Settings) -> None:
    from ingestflow.jobs.dispatcher import _apply_verdicts, _claim, _unrecorded

    [job_id] = _owner(settings.sqlalchemy_url, "lost", 1)
    claim = _claim(settings)
    assert claim is not None
    assert _unrecorded(settings) == []
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        assert job is not None
        job.dispatched_at = utcnow() - timedelta(minutes=5)
    assert _unrecorded(settings) == [(job_id, claim.key)]
    _apply_verdicts(settings, {job_id: (claim.key, "UNRECORDED", "")})
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        assert job is not None and job.dispatch_key is None and job.status == JobStatus.queued


def test_stages_are_declared_once_and_every_one_has_a_task() -> None:
    from ingestflow.pipeline import STAGES, plan
    from tasks.registry import task_for

    assert [s.name for s in plan("text")] == ["parse", "chunk", "embed", "extract-entities", "graph", "summarise"]
    assert [s.name for s in plan("audio")] == ["transcribe", "improve", "chunk", "embed", "extract-entities",
                                               "graph", "summarise"]
    for stage in STAGES:
        task = task_for(stage.name)
        assert task.name == stage.name and task.timeout_seconds == stage.timeout_s
        assert task.description == stage.description


def test_sqlite_data_directory_is_imported_whole(pg_url: str, tmp_path: Path) -> None:
    from ingestflow.db import init_db
    from ingestflow.shell.stack.sqlite_import import import_sqlite

    legacy = tmp_path / "ingestflow.db"
    sqlite_url = f"sqlite:///{legacy}"
    init_db(sqlite_url)
    ids = _owner(sqlite_url, "old", 3)
    with session_scope(sqlite_url) as db:
        done, running = db.get(Job, ids[0]), db.get(Job, ids[1])
        assert done is not None and running is not None
        done.status, done.completed_stages = JobStatus.completed, ["parse", "chunk"]
        running.status, running.flow_run_id = JobStatus.running, "gone"
    copied = import_sqlite(legacy, pg_url)
    assert copied == {"users": 1, "documents": 3, "jobs": 3}
    assert not legacy.exists() and legacy.with_name("ingestflow.db.imported").exists()
    with session_scope(pg_url) as db:
        jobs = {j.id: j for j in db.scalars(select(Job))}
        assert jobs[ids[0]].status == JobStatus.completed and jobs[ids[0]].completed_stages == ["parse", "chunk"]
        assert jobs[ids[1]].status == JobStatus.queued and jobs[ids[1]].resume and not jobs[ids[1]].flow_run_id


def test_supervisor_restarts_a_killed_child_and_leaves_the_others(tmp_path: Path) -> None:
    from ingestflow.shell.stack.supervisor import Child, Supervisor, read_states

    lines: list[str] = []
    sup = Supervisor(dict(os.environ), tmp_path / "logs", tmp_path / "stack.json", lines.append)
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    sup.start(Child("one", sleeper, lambda: True))
    sup.start(Child("two", sleeper, lambda: True))
    try:
        (_, one), (_, two) = sup.processes()
        os.kill(one.pid, signal.SIGKILL)
        one.wait()
        sup.tick()
        assert read_states(tmp_path / "stack.json")[0].state == "restarting"
        assert any("one" in line and "exited with -9" in line for line in lines)
        deadline = time.monotonic() + 5
        while sup.processes()[0][1].pid == one.pid and time.monotonic() < deadline:
            time.sleep(0.2)
            sup.tick()
        states = read_states(tmp_path / "stack.json")
        assert states[0].state == "running" and states[0].restarts == 1 and states[0].last_exit_code == -9
        assert sup.processes()[1][1].pid == two.pid and two.poll() is None  # the other never stopped
    finally:
        sup.stop_all()
