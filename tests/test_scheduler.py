"""Fast tier: the batch scheduler (ingestflow/jobs/scheduler.py) in-process over a fake executor, fake job books
and a fake clock: grouping, the group wait, splitting a failed group, resuming and dropping a document mid-run;
and what the job books write for a finished stage, against a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingestflow.db import Document, Job, JobStatus, User, session_scope
from ingestflow.errors import CorruptInput, IngestError, TransientError, is_transient
from ingestflow.jobs.scheduler import GROUP_MAX, GROUP_WAIT_S, Scheduler
from ingestflow.pipeline import AUDIO, BY_NAME, SMALL_BYTES, TEXT, ChunkResult, EmbedResult, Stage, StageResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import Settings, get_settings

EPOCH = 1_700_000_000.0


class FakeClock:
    """A clock that moves only when the fake executor waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def epoch(self) -> float:
        return EPOCH + self.now


@dataclass(eq=False)  # a handle is itself, as a task run's future is
class FakeHandle:
    stage: Stage
    refs: list[DocumentRef]
    done_at: float


@dataclass(frozen=True)
class Submission:
    stage: str
    jobs: list[str]
    name: str
    at: float  # the fake clock's time


@dataclass
class FakeExecutor:
    """A fake of the Dask executor: a stage over a document takes the fake seconds `durations` gives it (none
    unless given), a handle is done when its slowest document is, and waiting moves the fake clock on to the first
    handle done or the timeout, whichever comes first. `errors` makes a stage raise for a document: a permanent
    `ingestflow.errors` error (the document's own fault) or a transient one."""

    clock: FakeClock
    durations: dict[tuple[str, str], float] = field(default_factory=dict)  # (stage, job id) -> fake seconds
    errors: dict[tuple[str, str], IngestError] = field(default_factory=dict)  # (stage, job id) -> what it raises
    submitted: list[Submission] = field(default_factory=list)

    def submit(self, stage: Stage, refs: list[DocumentRef], task_run_name: str) -> FakeHandle:
        jobs = [_job(r) for r in refs]
        self.submitted.append(Submission(stage.name, jobs, task_run_name, self.clock.now))
        took = max(self.durations.get((stage.name, j), 0.0) for j in jobs)
        return FakeHandle(stage, refs, self.clock.now + took)

    def done(self, handles: list[FakeHandle], timeout_s: float) -> list[FakeHandle]:
        first = min(h.done_at for h in handles)
        self.clock.now = max(self.clock.now, min(first, self.clock.now + timeout_s))
        return [h for h in handles if h.done_at <= self.clock.now]

    def result(self, handle: FakeHandle) -> list[StageResult]:
        for ref in handle.refs:
            if (handle.stage.name, _job(ref)) in self.errors:
                raise self.errors[handle.stage.name, _job(ref)]
        return [StageResult(wall_s=0.5, started_at=EPOCH, finished_at=EPOCH) for _ in handle.refs]

    def stages(self, name: str) -> list[list[str]]:
        """The members of each task run of one stage, in the order they were submitted."""
        return [s.jobs for s in self.submitted if s.stage == name]


@dataclass
class FakeBooks:
    """In-memory job books: `jobs` are the claimable ones (their document, the stages done); `dropped_at` a job
    cancelled or deleted while a stage ran; `cancelled` a job whose failure comes too late to matter (skipped)."""

    jobs: dict[str, tuple[DocumentRef, list[str]]]
    dropped_at: dict[str, str] = field(default_factory=dict)  # job id -> the stage it is dropped after
    cancelled: set[str] = field(default_factory=set)
    marked: list[tuple[str, list[str], str]] = field(default_factory=list)
    recorded: list[tuple[str, list[str], float, str]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, BaseException]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)  # jobs (also in `jobs`) that `more` hands out, in order
    asked: list[int] = field(default_factory=list)  # each `more` call's limit

    def start(self, job_id: str) -> tuple[DocumentRef, list[str]] | None:
        return self.jobs.get(job_id)

    def mark_running(self, job_ids: Sequence[str], stage: Stage, task_run: str) -> None:
        self.marked.append((stage.name, list(job_ids), task_run))

    def record_stage(self, done: Sequence[tuple[str, StageResult]], stage: Stage, submitted_at: float,
                     task_run: str) -> set[str]:
        self.recorded.append((stage.name, [j for j, _ in done], submitted_at, task_run))
        return {j for j, _ in done if self.dropped_at.get(j) != stage.name}

    def finish(self, job_id: str) -> None:
        self.finished.append(job_id)

    def fail(self, job_id: str, stage: str, exc: BaseException) -> str:
        self.failed.append((job_id, stage, exc))
        if job_id in self.cancelled:
            return "skipped"
        return "requeued" if is_transient(exc) else "failed"  # as fail_job does before the attempts run out

    def forget_deleted(self, refs: Sequence[DocumentRef]) -> None:
        self.forgotten.extend(_job(r) for r in refs)

    def more(self, limit: int) -> list[str]:
        self.asked.append(limit)
        taken, self.queue = self.queue[:limit], self.queue[limit:]
        return taken


def _job(ref: DocumentRef) -> str:
    assert ref.job_id is not None
    return ref.job_id


def _ref(job_id: str, *, kind: str = TEXT, fmt: str = "md", size: int = 2_000) -> DocumentRef:
    return DocumentRef(id=f"doc-{job_id}", job_id=job_id, owner_id="owner", kind=kind, format=fmt,
                       title=job_id, collection=None, source=Path("/nowhere") / job_id,
                       work_dir=Path("/nowhere/derived") / job_id, size_bytes=size)


def _small(job_id: str) -> tuple[DocumentRef, list[str]]:
    return _ref(job_id), []


def _large(job_id: str) -> tuple[DocumentRef, list[str]]:
    return _ref(job_id, fmt="pdf", size=5 * SMALL_BYTES), []


def _ids(n: int, prefix: str = "job") -> list[str]:
    return [f"{prefix}{i:05d}-0000-4000-8000-000000000000" for i in range(n)]


def _run(jobs: dict[str, tuple[DocumentRef, list[str]]], order: list[str] | None = None,
         ) -> tuple[dict[str, str], FakeExecutor, FakeBooks]:
    clock = FakeClock()
    executor, books = FakeExecutor(clock), FakeBooks(jobs)
    return Scheduler(executor, books, clock).run(order or list(jobs)), executor, books


def _runner(jobs: dict[str, tuple[DocumentRef, list[str]]]) -> tuple[Scheduler[FakeHandle], FakeExecutor, FakeBooks]:
    clock = FakeClock()
    executor, books = FakeExecutor(clock), FakeBooks(jobs)
    return Scheduler(executor, books, clock), executor, books


def test_small_documents_share_one_task_run_at_every_stage() -> None:
    a, b, c = _ids(3)
    outcome, executor, books = _run({j: _small(j) for j in (a, b, c)})
    assert outcome == dict.fromkeys((a, b, c), "completed")
    # The entities and the summary need only the chunks: they go with embed, and graph once the entities are done.
    assert [(s.stage, s.jobs, s.name, s.at) for s in executor.submitted] == [
        (name, [a, b, c], f"{name}-job00000+2", 0.0)
        for name in ("parse", "chunk", "embed", "extract-entities", "summarise", "graph")]
    # The job view reads the running stage and its task run; the accounting is the task run's, by its name.
    assert books.marked == [(s.stage, s.jobs, s.name) for s in executor.submitted]
    assert books.recorded == [(s.stage, s.jobs, EPOCH + s.at, s.name) for s in executor.submitted]
    assert books.finished == [a, b, c] and books.failed == [] and books.forgotten == []


def test_a_large_document_goes_alone_where_small_ones_group_and_joins_them_at_batched_stages() -> None:
    small, large = _ids(2)
    scheduler, executor, _ = _runner({small: _small(small), large: _large(large)})
    executor.durations[("parse", large)] = 1.0  # less than the group wait: the small one waits for it
    assert scheduler.run([small, large]) == {small: "completed", large: "completed"}
    assert executor.stages("parse") == [[large], [small]]
    assert [(s.jobs, s.at) for s in executor.submitted if s.stage == "embed"] == [([small, large], 1.0)]
    assert executor.stages("summarise") == [[small, large]]  # batched too: one model call over both
    assert [s.name for s in executor.submitted if s.stage == "embed"] == ["embed-job00000+1"]


def test_a_group_goes_alone_once_its_oldest_has_waited_group_wait_s() -> None:
    small, large = _ids(2)
    scheduler, executor, _ = _runner({small: _small(small), large: _large(large)})
    executor.durations[("parse", large)] = 10.0
    assert scheduler.run([small, large]) == {small: "completed", large: "completed"}
    assert [(s.jobs, s.at) for s in executor.submitted if s.stage == "embed"] == [([small], GROUP_WAIT_S),
                                                                                 ([large], 10.0)]
    assert [s.name for s in executor.submitted if s.stage == "embed"] == ["embed-job00000", "embed-job00001"]


def test_a_full_group_goes_at_once_in_runs_of_group_max() -> None:
    *smalls, large = _ids(2 * GROUP_MAX + 2)
    jobs = {j: _small(j) for j in smalls} | {large: _large(large)}
    scheduler, executor, _ = _runner(jobs)
    executor.durations[("parse", large)] = 10.0  # could join the embed group, but the group is full before then
    outcome = scheduler.run(list(jobs))
    assert set(outcome.values()) == {"completed"}
    chunks = [smalls[:GROUP_MAX], smalls[GROUP_MAX:2 * GROUP_MAX], smalls[2 * GROUP_MAX:]]
    assert [(s.jobs, s.at) for s in executor.submitted if s.stage == "embed"] == [
        *((c, 0.0) for c in chunks), ([large], 10.0)]
    assert [s.name for s in executor.submitted if s.stage == "embed"] == [
        "embed-job00000+63", "embed-job00064+63", "embed-job00128", "embed-job00129"]


def test_a_group_under_group_max_waits_for_what_could_join_it() -> None:
    *smalls, large = _ids(GROUP_MAX)
    jobs = {j: _small(j) for j in smalls} | {large: _large(large)}
    scheduler, executor, _ = _runner(jobs)
    executor.durations[("parse", large)] = 10.0
    scheduler.run(list(jobs))
    assert [(len(s.jobs), s.at) for s in executor.submitted if s.stage == "embed"] == [(GROUP_MAX - 1, GROUP_WAIT_S),
                                                                                       (1, 10.0)]


def test_a_document_that_fails_its_group_is_split_out_and_fails_alone() -> None:
    a, b, c = _ids(3)
    scheduler, executor, books = _runner({j: _small(j) for j in (a, b, c)})
    bad = CorruptInput("no text layer")
    executor.errors[("embed", b)] = bad
    assert scheduler.run([a, b, c]) == {a: "completed", b: "failed", c: "completed"}
    assert executor.stages("embed") == [[a, b, c], [a], [b], [c]]
    # The entities had run beside embed; graph does not wait for embed, so it went for all three before b's
    # embed failed alone. b's job fails once nothing of it runs; its neighbours go on together.
    assert executor.stages("extract-entities") == [[a, b, c]] and executor.stages("graph") == [[a, b, c]]
    assert books.failed == [(b, "embed", bad)] and books.finished == [a, c] and books.forgotten == []


def test_a_transient_error_fails_the_whole_group_without_splitting() -> None:
    a, b, c = _ids(3)
    scheduler, executor, books = _runner({j: _small(j) for j in (a, b, c)})
    busy = TransientError("vector store busy")
    executor.errors[("embed", b)] = busy
    assert scheduler.run([a, b, c]) == dict.fromkeys((a, b, c), "requeued")
    assert executor.stages("embed") == [[a, b, c]]
    # What ran beside embed is recorded (a resumed run skips it); each job is requeued once none of it runs, so
    # no stage of this run writes for a job that another run may have taken.
    assert [s.stage for s in executor.submitted] == ["parse", "chunk", "embed", "extract-entities", "summarise"]
    assert [(stage, jobs) for stage, jobs, *_ in books.recorded][2:] == [("extract-entities", [a, b, c]),
                                                                       ("summarise", [a, b, c])]
    assert books.failed == [(a, "embed", busy), (b, "embed", busy), (c, "embed", busy)] and books.finished == []


def test_a_resumed_run_starts_at_the_first_stage_not_done() -> None:
    text, recording = _ids(2)
    jobs = {text: (_ref(text), ["parse", "chunk"]),
            recording: (_ref(recording, kind=AUDIO, fmt="mp3", size=50_000), ["transcribe"])}
    outcome, executor, books = _run(jobs)
    assert outcome == {text: "completed", recording: "completed"}
    assert [s.stage for s in executor.submitted if text in s.jobs] == ["embed", "extract-entities", "summarise",
                                                                       "graph"]
    assert [s.stage for s in executor.submitted if recording in s.jobs] == [
        "improve", "chunk", "embed", "extract-entities", "summarise", "graph"]
    assert executor.stages("improve") == [[recording]] and executor.stages("chunk") == [[recording]]


def test_stages_that_need_only_the_chunks_run_beside_embed_and_the_job_ends_with_the_last() -> None:
    a, b = _ids(2)
    scheduler, executor, books = _runner({j: _small(j) for j in (a, b)})
    executor.durations |= {("embed", a): 3.0, ("extract-entities", a): 1.0, ("summarise", a): 5.0}
    assert scheduler.run([a, b]) == dict.fromkeys((a, b), "completed")
    assert [(s.stage, s.at) for s in executor.submitted] == [
        ("parse", 0.0), ("chunk", 0.0), ("embed", 0.0), ("extract-entities", 0.0), ("summarise", 0.0), ("graph", 1.0)]
    assert [stage for stage, *_ in books.recorded] == [
        "parse", "chunk", "extract-entities", "graph", "embed", "summarise"]
    assert books.finished == [a, b]  # when summarise, the last to end, was recorded
    # The job view follows the first running stage in the plan's order: embed's progress until it ends.
    assert [(stage, name) for stage, _, name in books.marked] == [
        ("parse", "parse-job00000+1"), ("chunk", "chunk-job00000+1"), ("embed", "embed-job00000+1"),
        ("summarise", "summarise-job00000+1")]


def test_precedence_puts_the_longer_chain_first_and_never_lifts_a_bulk_stage_over_a_single_uploads() -> None:
    from ingestflow.jobs.dispatcher import SINGLE_PRIORITY
    from ingestflow.pipeline import PRECEDENCE

    assert PRECEDENCE["extract-entities"] > PRECEDENCE["summarise"] == PRECEDENCE["embed"] == PRECEDENCE["graph"]
    assert PRECEDENCE["parse"] > PRECEDENCE["chunk"] > PRECEDENCE["embed"]
    assert min(PRECEDENCE.values()) >= 0 and max(PRECEDENCE.values()) < SINGLE_PRIORITY


def test_a_failed_stage_fails_the_job_only_once_its_other_stages_have_ended() -> None:
    """A job requeued on transient trouble may be taken by another run at once: none of this run's stages may still
    be writing for it then."""
    (a,) = _ids(1)
    clock = FakeClock()
    executor, books = FakeExecutor(clock), FakeBooks({a: _small(a)})
    executor.durations[("summarise", a)] = 5.0
    busy = TransientError("vector store busy")
    executor.errors[("embed", a)] = busy
    fail = books.fail
    failed_at: list[float] = []

    def timed_fail(job_id: str, stage: str, exc: BaseException) -> str:
        failed_at.append(clock.now)
        return fail(job_id, stage, exc)

    books.fail = timed_fail  # type: ignore[method-assign]
    assert Scheduler(executor, books, clock).run([a]) == {a: "requeued"}
    assert failed_at == [5.0] and books.failed == [(a, "embed", busy)]  # embed failed at 0.0
    assert [stage for stage, *_ in books.recorded][2:] == ["extract-entities", "summarise"]
    assert executor.stages("graph") == []  # nothing new starts for a job whose stage failed


def test_a_stage_that_fails_beside_another_is_the_one_the_failed_job_shows() -> None:
    (a,) = _ids(1)
    scheduler, executor, books = _runner({a: _small(a)})
    executor.durations[("embed", a)] = 5.0
    bad = CorruptInput("no sentences")
    executor.errors[("summarise", a)] = bad
    assert scheduler.run([a]) == {a: "failed"}
    # graph had joined its group as the summary failed: it leaves the group, nothing more starts for the job.
    assert books.failed == [(a, "summarise", bad)] and executor.stages("graph") == []
    assert [(stage, name) for stage, _, name in books.marked][-2:] == [("embed", "embed-job00000"),
                                                                       ("summarise", "summarise-job00000")]


def test_a_document_dropped_while_two_of_its_stages_run_is_forgotten_after_each() -> None:
    a, b = _ids(2)
    scheduler, executor, books = _runner({j: _small(j) for j in (a, b)})
    executor.durations[("summarise", b)] = 2.0
    books.dropped_at[b] = "embed"  # deleted while embed and its summary ran
    assert scheduler.run([a, b]) == {a: "completed", b: "skipped"}
    assert executor.stages("graph") == [[a]] and executor.stages("summarise") == [[a, b]]
    # When embed found it gone, and again after each stage that ran beside embed (they wrote after the DELETE).
    assert books.forgotten == [b, b, b] and books.finished == [a] and books.failed == []


def test_a_document_dropped_mid_run_is_forgotten_and_goes_no_further() -> None:
    a, b = _ids(2)
    scheduler, executor, books = _runner({j: _small(j) for j in (a, b)})
    books.dropped_at[b] = "chunk"  # cancelled or deleted while its chunk stage ran
    assert scheduler.run([a, b]) == {a: "completed", b: "skipped"}
    assert executor.stages("chunk") == [[a, b]] and executor.stages("embed") == [[a]]
    assert books.forgotten == [b] and books.finished == [a] and books.failed == []


def test_every_job_gets_its_outcome() -> None:
    done, bad, flaky, unknown, dropped, cancelled = _ids(6)
    jobs = {j: _small(j) for j in (done, bad, dropped, cancelled)} | {flaky: _large(flaky)}
    scheduler, executor, books = _runner(jobs)
    executor.errors[("parse", bad)] = CorruptInput("not markdown")
    executor.errors[("parse", cancelled)] = CorruptInput("not markdown either")
    executor.errors[("parse", flaky)] = TransientError("GPU busy")
    books.dropped_at[dropped] = "parse"
    books.cancelled.add(cancelled)  # cancelled while its stage failed: its failure no longer counts
    order = [done, bad, flaky, unknown, dropped, cancelled]
    outcome = scheduler.run(order)
    assert list(outcome) == order
    assert outcome == {done: "completed", bad: "failed", flaky: "requeued", unknown: "skipped", dropped: "skipped",
                       cancelled: "skipped"}
    assert executor.stages("parse") == [[flaky], [done, bad, dropped, cancelled], [done], [bad], [dropped],
                                        [cancelled]]
    assert sorted(books.forgotten) == sorted([dropped, cancelled]) and books.finished == [done]
    assert {s.stage for s in executor.submitted if set(s.jobs) - {done}} == {"parse"}


def test_a_run_that_may_hold_more_takes_queued_jobs_as_it_goes_and_ends_when_none_are_left() -> None:
    """An ingest-batch run tops its documents up to `hold` from the queue instead of ending: a bulk import is a few
    long runs, not one run (a process start of 2-3.5 CPU s) per few documents."""
    first = _ids(3)
    later = _ids(5, prefix="later")
    clock = FakeClock()
    executor = FakeExecutor(clock, durations={("parse", j): 1.5 for j in first + later})
    books = FakeBooks({j: _small(j) for j in first + later}, queue=list(later))
    outcome = Scheduler(executor, books, clock, hold=4).run(list(first))
    assert outcome == dict.fromkeys(first + later, "completed") and list(outcome) == first + later
    assert sorted(books.finished) == sorted(first + later)
    assert all(limit <= 4 for limit in books.asked) and books.asked[0] == 1  # 3 in hand: one more
    assert books.asked[-1] >= 1 and books.queue == []  # it ended after asking and getting none
    parse_runs = executor.stages("parse")
    assert parse_runs[0] == first + later[:1] and sum(len(r) for r in parse_runs) == len(first + later)
    # Without `hold` (ingest-document) it never asks.
    books = FakeBooks({j: _small(j) for j in first + later}, queue=list(later))
    assert Scheduler(FakeExecutor(FakeClock()), books, FakeClock()).run(list(first)) == dict.fromkeys(
        first, "completed")
    assert books.asked == [] and books.queue == later


# What the job books write for a finished stage: the accounting the job view shows as stages[].metrics.


@pytest.fixture
def settings(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("INGESTFLOW_DATABASE_URL", pg_url)
    monkeypatch.setenv("INGESTFLOW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _queued_jobs(url: str, n: int) -> list[str]:
    ids = []
    with session_scope(url) as db:
        user = User(name="owner")
        db.add(user)
        db.flush()
        for i in range(n):
            doc = Document(owner_id=user.id, sha256=f"{i:064d}", filename=f"{i}.md", title=f"{i}", kind=TEXT,
                           format="md", mime_type="text/markdown", size_bytes=10)
            db.add(doc)
            db.flush()
            job = Job(document_id=doc.id, owner_id=user.id, kind=TEXT, dispatch_key="key")
            db.add(job)
            db.flush()
            ids.append(job.id)
    return ids


def test_record_stage_writes_each_jobs_accounting_and_leaves_a_cancelled_one(settings: Settings) -> None:
    from ingestflow.jobs.jobview import base_view
    from ingestflow.jobs.lifecycle import mark_running, record_stage, start_job

    kept, gone = _queued_jobs(settings.sqlalchemy_url, 2)
    for job_id in (kept, gone):
        assert start_job(job_id, "key", "run-1") is not None
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, gone)
        assert job is not None
        job.status = JobStatus.cancelled
    submitted = EPOCH
    chunked = ChunkResult(chunk_count=7, wall_s=1.23456, cpu_s=0.5, started_at=submitted + 3,
                          finished_at=submitted + 4.25, attempt=2, note="one table dropped")
    live = record_stage([(kept, chunked), (gone, chunked)], "key", BY_NAME["chunk"], submitted, "run-1",
                        "chunk-kept+1")
    embedded = EmbedResult(vector_count=7, wall_s=0.25, cpu_s=0.125, started_at=submitted + 5,
                           finished_at=submitted + 5.25, model="bge-small@1")
    assert record_stage([(kept, embedded)], "other-key", BY_NAME["embed"], submitted, "run-1", "embed-x") == set()
    record_stage([(kept, embedded)], "key", BY_NAME["embed"], submitted, "run-1", "embed-kept")
    assert live == {kept}
    with session_scope(settings.sqlalchemy_url) as db:
        job, cancelled = db.get(Job, kept), db.get(Job, gone)
        assert job is not None and cancelled is not None
        doc = db.get(Document, job.document_id)
        assert doc is not None
        assert job.completed_stages == ["chunk", "embed"] and job.notes == ["chunk: one table dropped"]
        assert job.stage_metrics["chunk"] == {
            "wall_s": 1.235, "cpu_s": 0.5, "wait_s": 3.0, "attempts": 2, "model": None,
            "started_at": "2023-11-14T22:13:23Z", "finished_at": "2023-11-14T22:13:24.250000Z",
            "flow_run_id": "run-1", "task_run": "chunk-kept+1"}
        assert doc.chunk_count == 7 and doc.vector_indexed and doc.models == {"embedding": "bge-small@1"}
        assert doc.stage_versions == {"chunk": BY_NAME["chunk"].version, "embed": BY_NAME["embed"].version}
        assert cancelled.completed_stages == [] and cancelled.stage_metrics == {}
        view = base_view(job, settings)
    metrics = {s.name: s.metrics for s in view.stages if s.metrics}
    assert set(metrics) == {"chunk", "embed"} and view.stages_wall_s == 1.485
    assert metrics["chunk"] is not None and metrics["chunk"].wall_s == 1.235 and metrics["chunk"].wait_s == 3.0
    assert [(s.name, s.state, s.attempts) for s in view.stages][1:3] == [("chunk", "completed", 2),
                                                                          ("embed", "completed", 1)]
    # Marked at the entities, which run beside summarise once the chunks are done: both read as running.
    mark_running([kept], "key", BY_NAME["extract-entities"], "extract-entities-kept")
    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, kept)
        assert job is not None
        view = base_view(job, settings)
    assert [(s.name, s.state) for s in view.stages][3:] == [("extract-entities", "running"), ("graph", "pending"),
                                                            ("summarise", "running")]


def test_take_more_holds_the_owners_next_jobs_only_while_no_other_owner_waits(settings: Settings) -> None:
    """The books' `more` for an ingest-batch run (ingestflow/jobs/dispatcher.take_more), on a real PostgreSQL."""
    from datetime import timedelta

    from ingestflow.db import utcnow
    from ingestflow.jobs.dispatcher import TAKE_MORE_FOR, take_more

    held, *queued = _queued_jobs(settings.sqlalchemy_url, 4)
    with session_scope(settings.sqlalchemy_url) as db:
        for job in db.query(Job).filter(Job.id.in_(queued)):
            job.dispatch_key = None
        held_job = db.get(Job, held)
        assert held_job is not None
        held_job.dispatched_at = utcnow()
        owner = held_job.owner_id
        # Another owner's job that waits out a backoff is not waiting for a run yet.
        other = User(name="other")
        db.add(other)
        db.flush()
        doc = Document(owner_id=other.id, sha256="f" * 64, filename="o.md", title="o", kind=TEXT, format="md",
                       mime_type="text/markdown", size_bytes=10)
        db.add(doc)
        db.flush()
        waiting = Job(document_id=doc.id, owner_id=other.id, kind=TEXT, dispatch_after=utcnow() + timedelta(hours=1))
        db.add(waiting)
        db.flush()
        other_job = waiting.id
    assert take_more(settings, "key", "run-1", 2) == queued[:2]
    with session_scope(settings.sqlalchemy_url) as db:
        taken = [db.get(Job, j) for j in queued[:2]]
        assert all(j is not None and (j.dispatch_key, j.batch_flow_run_id) == ("key", "run-1") for j in taken)
        assert all(j.owner_id == owner for j in taken if j is not None)
        due = db.get(Job, other_job)
        assert due is not None
        due.dispatch_after = None  # now the other owner waits for a run: the dispatcher's turn, not this run's
    assert take_more(settings, "key", "run-1", 2) == []
    with session_scope(settings.sqlalchemy_url) as db:
        db.query(Job).filter(Job.id == other_job).delete()
        held_job = db.get(Job, held)
        assert held_job is not None
        held_job.dispatched_at = utcnow() - TAKE_MORE_FOR - timedelta(seconds=1)  # the run has taken long enough
    assert take_more(settings, "key", "run-1", 2) == []
    assert take_more(settings, "no-such-key", "run-2", 2) == []


def test_a_run_that_cannot_take_more_goes_on_with_what_it_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """Taking more only saves flow runs: with the database away, the run's books hand out none (the jobs stay queued
    for the dispatcher) rather than failing the run and the documents it holds."""
    from flows.run import LifecycleBooks

    monkeypatch.setenv("INGESTFLOW_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    get_settings.cache_clear()
    try:
        assert LifecycleBooks("key", "run-1").more(5) == []
        assert LifecycleBooks(None, "run-1").more(5) == []
    finally:
        get_settings.cache_clear()
