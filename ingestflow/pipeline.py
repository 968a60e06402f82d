"""The pipeline, declared once: every stage's name, label, kinds, placement, timeout and typed result.

The flows run `plan_for(document)`, the job bookkeeping applies each result to the document, the job view and the
dashboard (through `GET /v1/stages`) show the same list, and placement reads `gpu`. A stage's Prefect task
lives in its own module under tasks/ and is bound to its name there (`tasks.common.stage_task`).
Adding a stage means a `Stage` here, its result model, and its module; changing what a stage makes means
raising its `version`, and the backfill re-runs it (and what follows) on the documents it made.

Every stage's task takes a list of documents and returns one result per document, in order. A `batched`
stage's function does too: one model call over all their chunks, one store write. The others work on one
document at a time; with `groups_small`, short documents still share a task run, since a task run's own
cost on the worker (about 0.1 s of Prefect context and client set-up, several times that on a busy
machine) is more than parsing or chunking a two-line note takes.

A stage starts once the one before it in the plan is done, or the one its `after` names (`waits_for`): the
plan's order is what the job view shows and what the backfill re-runs from, `after` what may run side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from ingestflow.answering.summary import PROMPT_VERSION
from ingestflow.redaction.analyzer import RULES_VERSION
from ingestflow.refs import DocumentRef

if TYPE_CHECKING:
    from ingestflow.db import Document


class StageResult(BaseModel):
    """What every stage returns; the accounting fields are filled in by the task wrapper on the worker."""

    model: str | None = None  # the model (and version) that made this stage's output
    note: str | None = None  # something the user should know without the stage failing
    wall_s: float = 0.0
    cpu_s: float = 0.0
    started_at: float = 0.0  # epoch seconds on the worker, for the time the stage waited to run
    finished_at: float = 0.0
    attempt: int = 1
    # What a batched stage's time is shared out by between the documents it ran for (their chunks).
    units: int = 1

    def apply(self, doc: Document) -> None:
        """Set what this stage's output means for the document."""


class TranscribeResult(StageResult):
    language: str | None = None
    language_probability: float | None = None
    duration_s: float | None = None
    segments: int = 0

    def apply(self, doc: Document) -> None:
        doc.language = self.language
        doc.language_probability = self.language_probability
        doc.duration_s = self.duration_s


class TranslateResult(StageResult):
    segments: int = 0  # of the English translation; 0 where the recording is in English already


class ImproveResult(StageResult):
    pass


class ParseResult(StageResult):
    page_count: int | None = None

    def apply(self, doc: Document) -> None:
        doc.page_count = self.page_count


class RedactResult(StageResult):
    spans: int  # personal data replaced, all types together
    by_type: dict[str, int] = {}

    def apply(self, doc: Document) -> None:
        doc.redacted_spans = self.spans


class ChunkResult(StageResult):
    chunk_count: int

    def apply(self, doc: Document) -> None:
        doc.chunk_count = self.chunk_count


class EmbedResult(StageResult):
    vector_count: int

    def apply(self, doc: Document) -> None:
        doc.vector_indexed = True


class EntitiesResult(StageResult):
    entity_count: int

    def apply(self, doc: Document) -> None:
        doc.entities_extracted = True
        doc.entity_count = self.entity_count


class GraphResult(StageResult):
    def apply(self, doc: Document) -> None:
        doc.graph_indexed = True


class SummaryResult(StageResult):
    mode: str  # extractive, or llm where one is configured and its summary passed the guard
    sentences: int


@dataclass(frozen=True)
class Stage:
    name: str  # the Prefect task's name
    label: str  # the job's `stage` while it runs
    description: str
    kinds: frozenset[str]
    result: type[StageResult]
    timeout_s: float
    gpu: bool = False  # asks Dask for a GPU when a worker declares one
    model_slot: str | None = None  # key in Document.models that records result.model
    batched: bool = False  # the function takes many documents at once (see the module's docstring)
    groups_small: bool = False  # small documents share a task run
    only_redacted: bool = False  # in the plan of documents whose personal data is redacted, and theirs alone
    only_translated: bool = False  # in the plan of recordings that asked for a translation, and theirs alone
    # The stage whose output this one reads, where that is not the one before it in the plan: it then runs beside
    # the stages in between. The entities and the summary need only the chunks, so spaCy (one core) and the
    # summary's sentence embeddings keep the second core busy while the chunks are embedded and written.
    after: str | None = None
    # The stage's own rules or prompt: raised when what it makes from the same input changes. Each document
    # records the version every stage ran at; the backfill re-runs a stage whose version moved, and the ones
    # after it. (The model a stage ran, where it has one, is recorded beside it in Document.models.)
    version: str = "1"

    def runs_with_others(self, ref: DocumentRef) -> bool:
        """Whether this document waits to join others at this stage rather than go alone."""
        return self.batched or (self.groups_small and is_small(ref))


TEXT, AUDIO = "text", "audio"
BOTH = frozenset({TEXT, AUDIO})
# Text that docling reads without layout models or OCR, and chunks in milliseconds; a PDF may need OCR.
SMALL_BYTES = 256 * 1024


def is_small(ref: DocumentRef) -> bool:
    return ref.kind == TEXT and ref.format != "pdf" and 0 < ref.size_bytes <= SMALL_BYTES


STAGES: tuple[Stage, ...] = (
    Stage("transcribe", "transcribing", "faster-whisper with VAD and word timestamps", frozenset({AUDIO}),
          TranscribeResult, timeout_s=7200, gpu=True, model_slot="asr"),
    Stage("translate", "translating", "faster-whisper's translation into English, with start/end seconds",
          frozenset({AUDIO}), TranslateResult, timeout_s=7200, gpu=True, model_slot="translation",
          only_translated=True),
    Stage("improve", "improving", "deterministic cleanup; an LLM edit only if the guard accepts it",
          frozenset({AUDIO}), ImproveResult, timeout_s=1800, model_slot="improve"),
    Stage("parse", "parsing", "docling: structure, pages, headings; OCR for scanned pages", frozenset({TEXT}),
          ParseResult, timeout_s=1800, gpu=True, model_slot="parser", groups_small=True),
    Stage("redact", "redacting", "Presidio: names, numbers, addresses and dates of birth become typed placeholders",
          BOTH, RedactResult, timeout_s=1800, model_slot="redaction", groups_small=True, only_redacted=True,
          version=RULES_VERSION),
    Stage("chunk", "chunking", "chunks with pages and headings, or start/end seconds", BOTH, ChunkResult,
          timeout_s=600, groups_small=True),
    Stage("embed", "embedding", "sentence-transformers vectors into ChromaDB", BOTH, EmbedResult,
          timeout_s=1800, gpu=True, model_slot="embedding", batched=True),
    Stage("extract-entities", "graphing", "spaCy entities per chunk", BOTH, EntitiesResult, timeout_s=900,
          model_slot="ner", batched=True, after="chunk"),
    Stage("graph", "graphing", "entities and relations into the graph store", BOTH, GraphResult, timeout_s=900,
          model_slot="graph", batched=True),
    Stage("summarise", "summarising", "the most central sentences, each cited; an LLM's summary of them if it "
          "names nothing they do not", BOTH, SummaryResult, timeout_s=900, model_slot="summary", batched=True,
          after="chunk", version=PROMPT_VERSION),
)
BY_NAME = {s.name: s for s in STAGES}


class Planned(Protocol):
    """What decides a document's plan: a Document, its Job (as it was when the job was made) or a DocumentRef."""

    @property
    def kind(self) -> str: ...
    @property
    def redact(self) -> bool: ...
    @property
    def translate(self) -> bool: ...


def plan(kind: str, *, redact: bool = False, translate: bool = False) -> list[Stage]:
    """The stages a document of this kind goes through, in order; the redact stage where it is redacted, the
    translate stage where it asked for a translation."""
    return [s for s in STAGES if kind in s.kinds and (redact or not s.only_redacted)
            and (translate or not s.only_translated)]


def plan_for(item: Planned) -> list[Stage]:
    return plan(item.kind, redact=item.redact, translate=item.translate)


def waits_for(stage: Stage, planned: Sequence[Stage]) -> Stage | None:
    """The stage of this plan that must be done before `stage` starts: its `after`, or else the one before it."""
    if stage.after is not None and BY_NAME[stage.after] in planned:
        return BY_NAME[stage.after]
    i = planned.index(stage)
    return planned[i - 1] if i else None


def upstream(stage: Stage, planned: Sequence[Stage]) -> set[str]:
    """Every stage of this plan that `stage` waits for, directly or through another."""
    found: set[str] = set()
    before = waits_for(stage, planned)
    while before is not None and before.name not in found:
        found.add(before.name)
        before = waits_for(before, planned)
    return found


def _waiting_on(stage: Stage) -> int:
    plans = [plan(kind, redact=True, translate=True) for kind in (TEXT, AUDIO)]
    return max(sum(1 for s in p if stage.name in upstream(s, p)) for p in plans if stage in p)


# How many stages wait on each, in the longest plan that has it. Of the stages ready on the workers at once, the
# one more stages wait on goes first (the longest chain first): with the chunks done, the entities (one core,
# graph waits on them) run beside embed and the summary takes the second core after them. In one run of the
# bench's mixed fixtures without it, the entities waited 8 s behind the summary for a worker thread.
PRECEDENCE = {s.name: _waiting_on(s) for s in STAGES}


class StageMetrics(BaseModel):
    """One stage's accounting on a job: how users find slow files. A batched stage's wall and CPU seconds
    are its task run's, shared out by the documents' chunks."""

    wall_s: float
    cpu_s: float
    wait_s: float
    attempts: int
    model: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    flow_run_id: str | None = None  # the run that did it; a resumed run reuses it rather than redoing it
    task_run: str | None = None  # the task run's name in the Prefect UI


def metrics_of(result: StageResult, submitted_at: float, flow_run_id: str, task_run: str) -> dict[str, Any]:
    return StageMetrics(
        wall_s=round(result.wall_s, 3), cpu_s=round(result.cpu_s, 3),
        wait_s=round(max(0.0, result.started_at - submitted_at), 3), attempts=result.attempt, model=result.model,
        started_at=datetime.fromtimestamp(result.started_at, UTC),
        finished_at=datetime.fromtimestamp(result.finished_at, UTC),
        flow_run_id=flow_run_id, task_run=task_run,
    ).model_dump(mode="json")
