"""Stage-level progress: a Prefect progress artifact the API reads, and the point where a stage notices
that its job was cancelled (a Dask worker thread cannot be killed, so long stages must stop themselves)."""

from __future__ import annotations

import time
from typing import Any

from ingestflow.errors import PermanentError


class JobCancelled(PermanentError):
    pass


class StageProgress:
    """`advance(done)` at most every `interval_s` updates the artifact and checks for cancellation."""

    # Every update is a write on the Prefect server (SQLite in the embedded default): once a second is plenty.
    def __init__(self, job_id: str | None, verb: str, total: float, unit: str, interval_s: float = 1.0) -> None:
        self.job_id, self.verb, self.total, self.unit, self.interval_s = job_id, verb, total, unit, interval_s
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

    def check_cancelled(self) -> None:
        if self.job_id is None:
            return
        from ingestflow.db import Job, JobStatus, session_scope
        from ingestflow.settings import get_settings

        with session_scope(get_settings().sqlalchemy_url) as db:
            job = db.get(Job, self.job_id)
            if job is None or job.status == JobStatus.cancelled:
                raise JobCancelled(f"job {self.job_id} was cancelled; stopped {self.verb.lower()}")
