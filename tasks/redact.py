"""redact: personal data in the parsed document or the transcripts replaced by typed placeholders, before
anything is chunked, embedded or graphed from them. The unredacted files are kept apart only where the owner's
setting says so; otherwise they are gone once this stage has run."""

from __future__ import annotations

import json
import shutil

from ingestflow.atomic_files import write_atomic
from ingestflow.audio.transcript import Transcript
from ingestflow.parsing.conversion import to_markdown
from ingestflow.parsing.persistence import load_document, save_document
from ingestflow.pipeline import RedactResult
from ingestflow.redaction import marker
from ingestflow.redaction.analyzer import version
from ingestflow.redaction.apply import Redacted, redact_document, redact_transcript
from ingestflow.refs import DocumentRef
from tasks.common import stage_task


def _inputs(ref: DocumentRef, *names: str) -> None:
    """Put the unredacted files in place to redact from. Fresh from parse or improve, they are copied apart
    first; this stage's own earlier output (a retry, or the backfill after the rules changed) is replaced by
    the copy kept apart, when there is one, so the rules always read what was said, not placeholders."""
    redacted = all(marker.is_redacted(ref.work_dir / n) for n in names)
    original = ref.original_dir
    if redacted:
        if all((original / n).exists() for n in names):
            for n in names:
                shutil.copyfile(original / n, ref.work_dir / n)
        return
    original.mkdir(exist_ok=True)
    for n in names:
        shutil.copyfile(ref.work_dir / n, original / n)


def _outputs(ref: DocumentRef, *names: str) -> None:
    """Note what this stage wrote, then drop the unredacted copy unless the owner keeps it."""
    marker.note(ref.work_dir, *names)
    if not ref.keep_original:
        shutil.rmtree(ref.original_dir, ignore_errors=True)


def redact_parsed(ref: DocumentRef) -> Redacted:
    names = (ref.parsed_json.name, ref.content_md.name)
    _inputs(ref, *names)
    doc = load_document(ref.parsed_json)
    found = redact_document(doc)
    save_document(doc, ref.parsed_json)
    write_atomic(ref.content_md, to_markdown(doc))
    _outputs(ref, *names)
    return found


def redact_transcripts(ref: DocumentRef) -> Redacted:
    """The improved transcript (what is chunked), the raw one (what users can download) and the English
    translation where there is one, alike."""
    paths = [ref.transcript_improved, ref.transcript_raw]
    if ref.transcript_translation.exists():
        paths.append(ref.transcript_translation)
    names = tuple(p.name for p in paths)
    _inputs(ref, *names)
    found = Redacted(0, {})
    for path in paths:
        data = json.loads(path.read_text())
        transcript = Transcript.from_dict(data)
        counted, llm_text = redact_transcript(transcript, data.get("llm_text"))
        redacted = {**data, **transcript.to_dict()}
        if llm_text is not None:
            redacted["llm_text"] = llm_text
        write_atomic(path, json.dumps(redacted))
        if path == ref.transcript_improved:
            found = counted
    _outputs(ref, *names)
    return found


def redact_one(ref: DocumentRef) -> RedactResult:
    found = redact_transcripts(ref) if ref.kind == "audio" else redact_parsed(ref)
    return RedactResult(spans=found.spans, by_type=found.by_type, model=version(), units=max(found.spans, 1))


@stage_task("redact")
def redact(ref: DocumentRef) -> RedactResult:
    """Names, phone numbers, e-mail addresses, card and account numbers, street addresses and dates of birth
    replaced by <PERSON>, <PHONE_NUMBER>, ... in what every later stage reads."""
    return redact_one(ref)
