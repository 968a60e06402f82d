"""improve: the deterministic cleanup always; an LLM edit on top only when the guard finds nothing dropped or
invented. The raw transcript is never overwritten: the improved one is a file of its own."""

from __future__ import annotations

import json

from ingestflow.atomic_files import write_atomic
from ingestflow.audio.cleanup import clean
from ingestflow.audio.llm_edit import GuardedResult, improve_with_llm
from ingestflow.audio.transcript import Transcript
from ingestflow.errors import PermanentError
from ingestflow.pipeline import ImproveResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.common import stage_task


def improve_document(ref: DocumentRef) -> ImproveResult:
    settings = get_settings()
    raw = Transcript.from_dict(json.loads(ref.transcript_raw.read_text()))
    cleaned = clean(raw)
    improved = cleaned.to_dict()
    improved_by = "deterministic"
    note = None
    if settings.llm_backend and not cleaned.is_empty:
        try:
            verdict = improve_with_llm(cleaned.text, settings)
        except PermanentError as exc:  # a misconfigured LLM must not cost the user the transcript
            verdict = GuardedResult(False, None, f"LLM unusable: {exc.message}", model=settings.llm_model)
        if verdict.accepted and verdict.text:
            # Segments keep the cleaned text and its timestamps; the LLM's prose is the improved plain text.
            improved["llm_text"] = verdict.text
            improved_by = f"deterministic+{verdict.model}"
        else:
            note = f"LLM edit rejected ({verdict.model}): {verdict.reason}"
    write_atomic(ref.transcript_improved, json.dumps(improved))
    return ImproveResult(model=improved_by, note=note)


@stage_task("improve")
def improve(ref: DocumentRef) -> ImproveResult:
    """The cleaned transcript beside the raw one, which is never overwritten."""
    return improve_document(ref)
