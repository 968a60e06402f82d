"""Fast tier, on a real PostgreSQL: a queued job wakes the dispatcher at once (migration 0012's trigger and
ingestflow/jobs/wake.py), a folder's uploads wake it once they stop coming, other job changes do not, and with
no database to listen on it still wakes at every tick."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from ingestflow.db import Job, JobStatus, session_scope
from ingestflow.jobs.wake import QUIET_S, QueueWake
from ingestflow.settings import Settings


def _uploader(pg_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    from api.intake import accept
    from ingestflow.auth import Owner, create_key
    from ingestflow.stores import storage

    settings = Settings(database_url=pg_url, data_dir=tmp_path)
    with session_scope(pg_url) as db:
        user, _key = create_key(db, "caller")
        owner = Owner(id=user.id, name=user.name)
    count = iter(range(10**6))

    def upload() -> str:
        body = f"# Note {next(count)}\n\nAlice met Bob in Leeds.\n".encode()
        tmp, sha, size = storage.spool(io.BytesIO(body), settings.files_dir, 10**6)
        with session_scope(pg_url) as db:
            return accept(db, owner, settings, tmp, sha, size, filename="note.md", language=None, title=None,
                          collection=None, redact=False).job_id

    return upload


async def _woken(wake: QueueWake, timeout_s: float) -> float:
    t0 = time.monotonic()
    await wake.wait(asyncio.Event(), timeout_s)
    return time.monotonic() - t0


def test_a_queued_job_wakes_the_dispatcher_and_other_changes_do_not(pg_url: str, tmp_path: Path) -> None:
    upload = _uploader(pg_url, tmp_path)

    async def main() -> None:
        async with QueueWake(pg_url) as wake:
            await asyncio.wait_for(wake.listening.wait(), 10)
            assert await _woken(wake, 5) < 1  # the first look after connecting: whatever was queued before
            assert await _woken(wake, 0.5) >= 0.5  # nothing queued: the tick
            t0 = time.monotonic()
            job_id = await asyncio.to_thread(upload)
            committed = time.monotonic() - t0
            assert await _woken(wake, 30) < committed + QUIET_S + 1
            with session_scope(pg_url) as db:  # the job's later changes are not news to the dispatcher
                db.scalar(select(Job).where(Job.id == job_id)).status = JobStatus.running
            assert await _woken(wake, 1.0) >= 1.0
            with session_scope(pg_url) as db:  # back in the queue (a retry, a requeue): news again
                db.scalar(select(Job).where(Job.id == job_id)).status = JobStatus.queued
            assert await _woken(wake, 30) < QUIET_S + 1

    asyncio.run(main())


def test_a_folder_of_uploads_wakes_it_once_they_stop_coming(pg_url: str) -> None:
    """Eight notifications 10 ms apart, as a folder's uploads commit: one wake, after the last of them."""
    from sqlalchemy import create_engine, text

    from ingestflow.jobs.wake import CHANNEL

    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")

    async def main() -> None:
        async with QueueWake(pg_url) as wake:
            await asyncio.wait_for(wake.listening.wait(), 10)
            await _woken(wake, 5)

            def folder() -> float:
                with engine.connect() as conn:
                    for _ in range(8):
                        conn.execute(text(f"NOTIFY {CHANNEL}"))
                        time.sleep(QUIET_S / 10)
                return time.monotonic()

            woken = asyncio.create_task(_woken(wake, 30))
            last = await asyncio.to_thread(folder)
            await woken
            assert time.monotonic() >= last  # not before the last of them
            assert await _woken(wake, 0.5) >= 0.5  # and once: they were all news of the same wake

    asyncio.run(main())
    engine.dispose()


@pytest.mark.parametrize("timeout_s", [0.3])
def test_without_a_database_to_listen_on_it_wakes_at_the_tick(timeout_s: float) -> None:
    async def main() -> None:
        async with QueueWake("postgresql+psycopg://nobody:x@127.0.0.1:9/none") as wake:
            for _ in range(3):
                assert timeout_s <= await _woken(wake, timeout_s) < timeout_s + 1
            assert not wake.listening.is_set()

    asyncio.run(main())
