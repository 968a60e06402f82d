"""How a flow run moves its documents through the pipeline (used by ingest-document and ingest-batch).

Every stage is a Prefect task on the Dask cluster and takes a list of documents. A document goes alone to a
per-document stage (transcribe, improve; parse and chunk of a PDF or a large file) as soon as the stage it
waits for is done (`ingestflow.pipeline.waits_for`: the one before it, or the one its `after` names, so the
entities and the summary run beside embed), so the workers always have work queued. At batched stages (embed,
entities, graph, summarise) every document, and at parse and chunk the small ones, gather into a group that runs
as one task run: one model call over all their chunks and one store write, and no task run's overhead per
two-line note. A group goes
when nothing still running could join it, when its oldest member has waited `GROUP_WAIT_S`, or when it is
full. A group that fails on a document's own fault is split, so one bad document never fails its neighbours.
A document whose stage failed starts nothing more, and its job's outcome waits until its other stages have ended.

The scheduling is a state machine over three small interfaces, so it runs in-process in the fast tests: an
`Executor` that runs a stage's task over some documents (Dask and Prefect in flows/run.py), the `JobBooks`
(the job bookkeeping of ingestflow/jobs/lifecycle.py, bound to the run's dispatch key and flow run id) and a
`Clock` (the group wait is tested without sleeping).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from ingestflow.errors import is_transient
from ingestflow.pipeline import BY_NAME, Stage, StageResult, plan_for, upstream, waits_for
from ingestflow.refs import DocumentRef

GROUP_WAIT_S = 2.0
GROUP_MAX = 64
# How long one look for finished stages waits before the groups are looked at again (their wait may be over).
POLL_S = 0.5
# How often a run that holds fewer documents than it may asks for more (one database query each time).
TAKE_EVERY_S = 1.0

H = TypeVar("H", bound=Hashable)


class Executor(Protocol[H]):
    """Runs stages' tasks; a handle stands for one submitted task run."""

    def submit(self, stage: Stage, refs: list[DocumentRef], task_run_name: str) -> H:
        """Start the stage over these documents; returns at once."""
        ...

    def done(self, handles: list[H], timeout_s: float) -> list[H]:
        """Those of the handles whose task run has finished, waiting up to the timeout for one to."""
        ...

    def result(self, handle: H) -> list[StageResult]:
        """A finished task run's results, one per document in order; raises what the stage raised."""
        ...


class JobBooks(Protocol):
    """The job bookkeeping (ingestflow/jobs/lifecycle.py), bound to one flow run and its dispatch key."""

    def start(self, job_id: str) -> tuple[DocumentRef, list[str]] | None:
        """Claim the job: its document and the stages already done, or None when it is not this run's to do."""
        ...

    def mark_running(self, job_ids: Sequence[str], stage: Stage, task_run: str) -> None: ...

    def record_stage(self, done: Sequence[tuple[str, StageResult]], stage: Stage, submitted_at: float,
                     task_run: str) -> set[str]:
        """Apply a finished stage; returns the jobs that go on (the others were cancelled, deleted or handed on)."""
        ...

    def finish(self, job_id: str) -> None: ...

    def fail(self, job_id: str, stage: str, exc: BaseException) -> str:
        """A stage gave up on the job; returns its outcome (failed, requeued or skipped)."""
        ...

    def forget_deleted(self, refs: Sequence[DocumentRef]) -> None: ...

    def more(self, limit: int) -> list[str]:
        """Up to `limit` more queued jobs for this run to do, now held by it; none when there are none for it."""
        ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds that never go back: what a group's wait is measured in."""
        ...

    def epoch(self) -> float:
        """Epoch seconds: what a worker's start is compared with for the time a stage waited to run."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def epoch(self) -> float:
        return time.time()


def task_run_name(stage: Stage, members: Sequence[str]) -> str:
    """The task run's name in the Prefect UI: the stage and the first job, and how many more share it."""
    return f"{stage.name}-{members[0][:8]}" + (f"+{len(members) - 1}" if len(members) > 1 else "")


@dataclass
class _Doc:
    ref: DocumentRef
    plan: list[Stage]
    todo: list[Stage]  # not done yet, in the plan's order
    busy: set[str] = field(default_factory=set)  # stages submitted or waiting in a group, not yet collected
    running: dict[str, str] = field(default_factory=dict)  # stages submitted -> their task run's name
    shown: str | None = None  # the stage the job view shows: the first of those running, in the plan's order
    waiting_since: dict[str, float] = field(default_factory=dict)  # stage -> when it joined that stage's group
    # A stage gave up on it while another of its stages ran: the job's outcome waits until none runs, so a job
    # requeued for another run is never written to by this one.
    failure: tuple[Stage, BaseException] | None = None


@dataclass
class _Running:
    stage: Stage
    members: list[str]
    refs: list[DocumentRef]
    submitted: float  # epoch seconds
    name: str


@dataclass
class Scheduler(Generic[H]):
    """One flow run's documents on their way through the pipeline."""

    executor: Executor[H]
    books: JobBooks
    clock: Clock = field(default_factory=SystemClock)
    docs: dict[str, _Doc] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)
    running: dict[H, _Running] = field(default_factory=dict)
    ready: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Documents in hand up to which the run takes more queued jobs from the books as it goes (0: it does not).
    hold: int = 0
    taken_at: float | None = None

    def run(self, job_ids: list[str]) -> dict[str, str]:
        """Each job's outcome, the jobs taken on the way included: completed, failed, requeued (transient trouble,
        back in the queue) or skipped."""
        order = list(job_ids)
        for job_id in job_ids:
            self.start(job_id)
        for job_id in list(self.docs):
            self.advance(job_id)
        while True:
            while self.running or any(self.ready.values()):
                self.take_more(order)
                self.release_groups()
                if not self.running:
                    continue
                for handle in self.executor.done(list(self.running), timeout_s=POLL_S):
                    self.collect(handle)
            if not self.take_more(order, now=True):
                return {job_id: self.outcome.get(job_id, "skipped") for job_id in order}

    def take_more(self, order: list[str], now: bool = False) -> bool:
        """Top the documents in hand up to `hold` from the queue (at most every `TAKE_EVERY_S`, unless `now`)."""
        in_hand = sum(1 for job_id in self.docs if job_id not in self.outcome)
        t = self.clock.monotonic()
        if in_hand >= self.hold or (not now and self.taken_at is not None and t - self.taken_at < TAKE_EVERY_S):
            return False
        self.taken_at = t
        taken = self.books.more(self.hold - in_hand)
        for job_id in taken:
            order.append(job_id)
            self.start(job_id)
            if job_id in self.docs:
                self.advance(job_id)
        return bool(taken)

    def start(self, job_id: str) -> None:
        claimed = self.books.start(job_id)
        if claimed is None:
            self.outcome[job_id] = "skipped"
            return
        ref, done = claimed  # a resumed run starts at the stages not completed
        planned = plan_for(ref)
        self.docs[job_id] = _Doc(ref, planned, [s for s in planned if s.name not in done])

    def advance(self, job_id: str) -> None:
        """Start each of the document's stages whose input is done, or finish the job when none is left."""
        doc = self.docs[job_id]
        if not doc.todo and not doc.busy:
            self.books.finish(job_id)
            self.outcome[job_id] = "completed"
            return
        for stage in doc.todo:
            before = waits_for(stage, doc.plan)
            if stage.name in doc.busy or (before is not None and before in doc.todo):
                continue
            doc.busy.add(stage.name)
            if stage.runs_with_others(doc.ref):
                doc.waiting_since[stage.name] = self.clock.monotonic()
                self.ready[stage.name].append(job_id)
            else:
                self.submit(stage, [job_id])

    def submit(self, stage: Stage, members: list[str]) -> None:
        refs = [self.docs[j].ref for j in members]
        name = task_run_name(stage, members)
        handle = self.executor.submit(stage, refs, name)
        self.running[handle] = _Running(stage, members, refs, self.clock.epoch(), name)
        for job_id in members:
            self.docs[job_id].running[stage.name] = name
        self.show(members)

    def show(self, job_ids: Sequence[str]) -> None:
        """Mark the jobs whose first running stage changed (one write per stage's task run): with stages side by
        side, the job view follows the one earliest in the plan (embed's progress, not the summary's)."""
        marks: dict[tuple[str, str], list[str]] = defaultdict(list)
        for job_id in job_ids:
            doc = self.docs.get(job_id)
            if doc is None or doc.failure is not None:  # a failed job's view stays on the stage that failed
                continue
            first = next((s.name for s in doc.plan if s.name in doc.running), None)
            if first is not None and first != doc.shown:
                doc.shown = first
                marks[first, doc.running[first]].append(job_id)
        for (stage_name, task_run), jobs in marks.items():
            self.books.mark_running(jobs, BY_NAME[stage_name], task_run)

    def release_groups(self) -> None:
        """Send each stage's group when it cannot grow, has waited long enough, or is full."""
        now = self.clock.monotonic()
        for stage_name, members in list(self.ready.items()):
            if not members:
                continue
            stage = BY_NAME[stage_name]
            oldest = min(self.docs[j].waiting_since[stage_name] for j in members)
            if not self._could_grow(stage) or now - oldest >= GROUP_WAIT_S or len(members) >= GROUP_MAX:
                self.ready[stage_name] = []
                for start in range(0, len(members), GROUP_MAX):
                    self.submit(stage, members[start : start + GROUP_MAX])

    def _could_grow(self, stage: Stage) -> bool:
        """Whether a document still running a stage that this one waits for would join this stage's group."""
        for r in self.running.values():
            for job_id in r.members:
                doc = self.docs.get(job_id)
                if (doc is not None and doc.failure is None and stage in doc.todo and stage.name not in doc.busy
                        and stage.runs_with_others(doc.ref) and r.stage.name in upstream(stage, doc.plan)):
                    return True
        return False

    def collect(self, handle: H) -> None:
        run = self.running.pop(handle)
        try:
            results = self.executor.result(handle)
        except BaseException as exc:
            self._failed(run, exc)
            return
        # A member whose job ended (failed, cancelled, deleted) while this stage ran is no longer this run's:
        # nothing is recorded for it, and what the stage wrote for a deleted document is removed again.
        ours = [(j, r) for j, r in zip(run.members, results, strict=True) if j in self.docs]
        live = self.books.record_stage(ours, run.stage, run.submitted, run.name) if ours else set()
        gone = [j for j, _ in ours if j not in live]  # cancelled, deleted or handed on: no next stage runs here
        for job_id, _ in ours:
            self.docs[job_id].running.pop(run.stage.name, None)
        for job_id in gone:
            self.docs[job_id].busy.discard(run.stage.name)
            self.outcome[job_id] = "skipped"
        lost = [ref for j, ref in zip(run.members, run.refs, strict=True) if j not in self.docs or j in gone]
        if lost:
            self.books.forget_deleted(lost)
        for job_id in gone:
            self._drop(job_id)
        for job_id, _ in ours:
            if job_id in live:
                doc = self.docs[job_id]
                doc.busy.discard(run.stage.name)
                doc.todo.remove(run.stage)
                if doc.failure is None:
                    self.advance(job_id)
                else:
                    self._conclude(job_id)
        self.show([j for j, _ in ours])

    def _failed(self, run: _Running, exc: BaseException) -> None:
        members = [j for j in run.members if j in self.docs]
        for job_id in members:
            self.docs[job_id].busy.discard(run.stage.name)
            self.docs[job_id].running.pop(run.stage.name, None)
        whole = [j for j in members if self.docs[j].failure is None]
        if len(whole) > 1 and not is_transient(exc):
            for job_id in whole:  # find the document it was about: each one alone
                self.docs[job_id].busy.add(run.stage.name)
                self.submit(run.stage, [job_id])
            whole = []
        # The job's error is shown on the stage that failed (fail_job leaves the job's stage as it is).
        failing = [j for j in whole if self.docs[j].shown != run.stage.name]
        if failing:
            self.books.mark_running(failing, run.stage, run.name)
        for job_id in whole:
            self.docs[job_id].failure, self.docs[job_id].shown = (run.stage, exc), run.stage.name
        for job_id in members:
            if self.docs[job_id].failure is not None:
                self._conclude(job_id)

    def _conclude(self, job_id: str) -> None:
        """A failed document's outcome, once none of its stages runs any more (those waiting in a group leave it)."""
        doc = self.docs[job_id]
        assert doc.failure is not None
        for stage_name in [name for name in doc.busy if job_id in self.ready[name]]:
            self.ready[stage_name].remove(job_id)
            doc.busy.discard(stage_name)
        if doc.busy:
            return
        stage, exc = doc.failure
        self.outcome[job_id] = self.books.fail(job_id, stage.name, exc)
        self._drop(job_id)
        if self.outcome[job_id] == "skipped":
            self.books.forget_deleted([doc.ref])

    def _drop(self, job_id: str) -> None:
        """The document is no longer this run's: it leaves the groups it waits in; its running stages are let be."""
        doc = self.docs.pop(job_id)
        for stage_name in doc.busy:
            if job_id in self.ready[stage_name]:
                self.ready[stage_name].remove(job_id)
