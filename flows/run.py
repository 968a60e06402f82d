"""How a flow run moves its documents through the pipeline (used by ingest-document and ingest-batch).

Every stage is a Prefect task on the Dask cluster and takes a list of documents. A document goes alone to a
per-document stage (transcribe, improve; parse and chunk of a PDF or a large file) as soon as its previous
stage is done, so the workers always have work queued. At batched stages (embed, entities, graph) every
document, and at parse and chunk the small ones, gather into a group that runs as one task run: one model
call over all their chunks and one store write, and no task run's overhead per two-line note. A group goes
when nothing still running could join it, when its oldest member has waited `GROUP_WAIT_S`, or when it is
full. A group that fails on a document's own fault is split, so one bad document never fails its neighbours.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import distributed
from prefect.runtime import flow_run

from flows.placement import on_workers
from ingestflow.errors import is_transient
from ingestflow.jobs.lifecycle import fail_job, finish_job, forget_deleted, mark_running, record_stage, start_job
from ingestflow.pipeline import BY_NAME, STAGES, Stage, StageResult, plan
from ingestflow.refs import DocumentRef

GROUP_WAIT_S = 2.0
GROUP_MAX = 64
ORDER = {s.name: i for i, s in enumerate(STAGES)}


@dataclass
class _Doc:
    ref: DocumentRef
    todo: list[Stage]
    waiting_since: float = 0.0


@dataclass
class _Running:
    stage: Stage
    members: list[str]
    future: Any
    submitted: float
    name: str


@dataclass
class _Run:
    key: str | None
    priority: int
    run_id: str
    docs: dict[str, _Doc] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)
    running: dict[distributed.Future[Any], _Running] = field(default_factory=dict)
    ready: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def advance(self, job_id: str) -> None:
        doc = self.docs[job_id]
        if not doc.todo:
            finish_job(job_id, self.key)
            self.outcome[job_id] = "completed"
            return
        stage = doc.todo[0]
        if stage.runs_with_others(doc.ref):
            doc.waiting_since = time.monotonic()
            self.ready[stage.name].append(job_id)
        else:
            self.submit(stage, [job_id])

    def submit(self, stage: Stage, members: list[str]) -> None:
        refs = [self.docs[j].ref for j in members]
        name = f"{stage.name}-{members[0][:8]}" + (f"+{len(members) - 1}" if len(members) > 1 else "")
        mark_running(members, self.key, stage, name)
        future = on_workers(stage, refs, self.priority, name)
        self.running[future.wrapped_future] = _Running(stage, members, future, time.time(), name)

    def release_groups(self) -> None:
        """Send each stage's group when it cannot grow, has waited long enough, or is full."""
        now = time.monotonic()
        for stage_name, members in list(self.ready.items()):
            if not members:
                continue
            stage = BY_NAME[stage_name]
            upstream = any(ORDER[r.stage.name] < ORDER[stage_name]
                           and any(j in self.docs and stage.runs_with_others(self.docs[j].ref) for j in r.members)
                           for r in self.running.values())
            oldest = min(self.docs[j].waiting_since for j in members)
            if not upstream or now - oldest >= GROUP_WAIT_S or len(members) >= GROUP_MAX:
                self.ready[stage_name] = []
                for start in range(0, len(members), GROUP_MAX):
                    self.submit(stage, members[start : start + GROUP_MAX])

    def collect(self, done: distributed.Future[Any]) -> None:
        run = self.running.pop(done)
        try:
            value = run.future.result()
        except BaseException as exc:
            if len(run.members) > 1 and not is_transient(exc):
                for job_id in run.members:  # find the document it was about: each one alone
                    self.submit(run.stage, [job_id])
                return
            for job_id in run.members:
                self.outcome[job_id] = fail_job(job_id, self.key, run.stage.name, exc)
            forget_deleted([self.docs[j].ref for j in run.members if self.outcome[j] == "skipped"])
            for job_id in run.members:
                self.docs.pop(job_id)
            return
        results: list[StageResult] = value
        live = record_stage(list(zip(run.members, results, strict=True)), self.key, run.stage, run.submitted,
                            self.run_id, run.name)
        gone = [j for j in run.members if j not in live]
        if gone:  # cancelled, deleted or handed on meanwhile: their next stages must not run here
            forget_deleted([self.docs.pop(j).ref for j in gone])
            self.outcome.update(dict.fromkeys(gone, "skipped"))
        for job_id in run.members:
            if job_id in live:
                self.docs[job_id].todo.pop(0)
                self.advance(job_id)


def _first_done(futures: list[distributed.Future[Any]], timeout_s: float) -> list[distributed.Future[Any]]:
    """The futures done within the timeout (distributed.wait wants a default client, which Prefect's Dask
    runner does not set; Future.done() is a local check)."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = [f for f in futures if f.done()]
        if done or time.monotonic() > deadline:
            return done
        time.sleep(0.02)


def run_jobs(job_ids: list[str], dispatch_key: str | None, priority: int = 0) -> dict[str, str]:
    """Each job's outcome: completed, failed, requeued (transient trouble, back in the queue) or skipped."""
    run = _Run(dispatch_key, priority, str(flow_run.get_id()))
    for job_id in job_ids:
        claimed = start_job(job_id, dispatch_key, run.run_id)
        if claimed is None:
            run.outcome[job_id] = "skipped"
            continue
        ref, done = claimed
        run.docs[job_id] = _Doc(ref, [s for s in plan(ref.kind, redact=ref.redact) if s.name not in done])
    for job_id in list(run.docs):
        run.advance(job_id)
    while run.running or any(run.ready.values()):
        run.release_groups()
        if not run.running:
            continue
        for future in _first_done(list(run.running), timeout_s=0.5):
            run.collect(future)
    return {job_id: run.outcome.get(job_id, "skipped") for job_id in job_ids}
