"""Small picklable handles passed between tasks instead of payloads: ids and paths only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ingestflow.settings import Settings


@dataclass(frozen=True)
class DocumentRef:
    id: str
    job_id: str | None
    owner_id: str
    kind: str
    format: str
    title: str
    collection: str | None
    source: Path  # the content-addressed upload
    work_dir: Path  # where stages leave what the next stage reads
    language: str | None = None  # given on upload; detected by transcription otherwise
    size_bytes: int = 0  # of the upload
    redact: bool = False  # personal data replaced before chunking (the redact stage)
    keep_original: bool = False  # the unredacted text kept apart for its owner
    translate: bool = False  # a recording's English translation beside its transcript (the translate stage)

    @property
    def original_dir(self) -> Path:
        """The unredacted parse or transcripts, where the owner's setting keeps them; nothing reads them but
        `version=original`."""
        return self.work_dir / "original"

    @property
    def parsed_json(self) -> Path:
        return self.work_dir / "parsed.json"

    @property
    def content_md(self) -> Path:
        return self.work_dir / "content.md"

    @property
    def chunks_json(self) -> Path:
        return self.work_dir / "chunks.json"

    @property
    def entities_json(self) -> Path:
        return self.work_dir / "entities.json"

    @property
    def summary_json(self) -> Path:
        return self.work_dir / "summary.json"

    @property
    def transcript_raw(self) -> Path:
        return self.work_dir / "transcript.raw.json"

    @property
    def transcript_improved(self) -> Path:
        return self.work_dir / "transcript.improved.json"

    @property
    def transcript_translation(self) -> Path:
        """What was said, in English (the translate stage); chunked beside the improved transcript."""
        return self.work_dir / "transcript.translation.json"


def work_dir(settings: Settings, document_id: str) -> Path:
    return settings.derived_dir / document_id

