"""Wakes the dispatcher when a job is queued, so an upload goes out at once rather than at the next tick.

The jobs table's trigger (migration 0012) notifies `CHANNEL` when a row becomes queued - an upload, a retry, a
requeue - and PostgreSQL delivers it when that transaction commits. The dispatcher's wait between ticks ends
then, once no further job has been queued for `QUIET_S`: a folder's uploads arrive a few milliseconds apart and
go out together, in one batch run, as they did within one tick. The tick stays, for what nothing notifies (a
backoff running out, runs to reconcile) and for when the listening connection is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from sqlalchemy.engine import make_url

log = logging.getLogger("ingestflow.jobs.dispatcher")

CHANNEL = "ingestflow_job_queued"  # migration 0012's trigger
# Long enough for the next upload of a folder (10-15 ms apart from one client), short against a run's start.
QUIET_S = 0.1
RECONNECT_S = 5.0


class QueueWake:
    """Listens on its own connection while entered; `wait` is the dispatcher's pause between ticks."""

    def __init__(self, sqlalchemy_url: str) -> None:
        self._conninfo = make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._queued = asyncio.Event()
        self.listening = asyncio.Event()  # set while LISTEN holds
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> QueueWake:
        self._task = asyncio.create_task(self._listen(), name="queue-wake")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._queued.set()  # what was queued while nobody listened
                    async for _ in conn.notifies():
                        self._queued.set()
            except Exception as exc:  # the database restarting: the ticks go on meanwhile
                log.warning("listening for queued jobs failed, dispatching on the tick alone for now: %s", exc)
            self.listening.clear()
            await asyncio.sleep(RECONNECT_S)

    async def wait(self, stop: asyncio.Event, timeout_s: float) -> None:
        """Until `timeout_s` has passed, `stop` is set, or a job was queued and none since for `QUIET_S`."""

        async def queued_then_quiet() -> None:
            await self._queued.wait()
            while True:
                self._queued.clear()
                try:
                    await asyncio.wait_for(self._queued.wait(), QUIET_S)
                except TimeoutError:
                    return

        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(queued_then_quiet())]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
