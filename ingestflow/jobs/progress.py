"""Stage-level progress: a Prefect progress artifact the API reads, and the point where a stage notices
that its job was cancelled (a Dask worker thread cannot be killed, so long stages must stop themselves).
A batched stage reports for all its documents at once and stops only when every one of them was cancelled;
before writing, it drops the ones that were."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ingestflow.errors import PermanentError


class JobCancelled(PermanentError):
    pass


def cancelled_jobs(job_ids: Sequence[str | None]) -> set[str]:
    """The jobs among these that were cancelled or deleted meanwhile."""
    ids = [j for j in job_ids if j]
    if not ids:
        return set()
    from sqlalchemy import select

    from ingestflow.db import Job, JobStatus, session_scope
    from ingestflow.settings import get_settings

    with session_scope(get_settings().sqlalchemy_url, read_only=True) as db:
        live = set(db.scalars(select(Job.id).where(Job.id.in_(ids), Job.status != JobStatus.cancelled)))
    return set(ids) - live


class StageProgress:
    """`advance(done)` at most every `interval_s` updates the artifact and checks for cancellation."""

    # Every update is a write on the Prefect server: once a second is plenty.
    def __init__(self, job_ids: str | None | Sequence[str | None], verb: str, total: float, unit: str,
                 interval_s: float = 1.0) -> None:
        ids = [job_ids] if job_ids is None or isinstance(job_ids, str) else list(job_ids)
        self.job_ids = [j for j in ids if j]
        self.verb, self.total, self.unit, self.interval_s = verb, total, unit, interval_s
        self._last = 0.0
        self._artifact_id: Any = None
        from prefect.context import TaskRunContext

        if TaskRunContext.get() is not None:  # outside a run (benchmarks, tests) there is nowhere to report
            from prefect.artifacts import create_progress_artifact

            self._artifact_id = create_progress_artifact(0.0, description=self._message(0))

    def _message(self, done: float) -> str:
        if self.unit == "s":
            return f"{self.verb} {done:.0f} of {self.total:.0f} seconds"
        return f"{self.verb} {done:.0f} of {self.total:.0f} {self.unit}"

    def advance(self, done: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        self.check_cancelled()
        if self._artifact_id is not None:
            from prefect.artifacts import update_progress_artifact

            pct = 100.0 * min(done, self.total) / self.total if self.total else 100.0
            update_progress_artifact(self._artifact_id, pct, description=self._message(done))

    def cancelled(self) -> set[str]:
        return cancelled_jobs(self.job_ids)

    def check_cancelled(self) -> None:
        """Stop the stage when every job it works for was cancelled (a lone job: when it was)."""
        if self.job_ids and self.cancelled() == set(self.job_ids):
            raise JobCancelled(f"job {', '.join(self.job_ids)} was cancelled; stopped {self.verb.lower()}")

