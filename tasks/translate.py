"""translate: what a recording says, in English, beside its transcript (faster-whisper's translate task on a
multilingual model), each segment with its start and end seconds; chunked and searchable with the transcript."""

from __future__ import annotations

import json

from ingestflow.atomic_files import write_atomic
from ingestflow.audio import whisper
from ingestflow.audio.probe import probe
from ingestflow.audio.transcript import Transcript
from ingestflow.detect import SUBTITLE_FORMATS
from ingestflow.jobs.progress import StageProgress
from ingestflow.pipeline import TranslateResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.common import stage_task


def translate_document(ref: DocumentRef) -> TranslateResult:
    heard = Transcript.from_dict(json.loads(ref.transcript_raw.read_text()))
    if ref.format in SUBTITLE_FORMATS or heard.language == "en" or heard.is_empty:
        ref.transcript_translation.unlink(missing_ok=True)  # a retry after the language was given differently
        why = ("a subtitle file has no audio to translate" if ref.format in SUBTITLE_FORMATS else
               "no speech to translate" if heard.is_empty else "spoken in English: nothing to translate")
        return TranslateResult(note=why)
    settings = get_settings()
    model = whisper.model_for(settings, translate=True)  # PermanentError: no multilingual model
    progress = StageProgress(ref.job_id, "Translating", probe(ref.source).duration_s, "s")
    english = whisper.transcribe(
        ref.source, model=model, device=settings.whisper_device, compute_type=settings.whisper_compute_type,
        language=heard.language, beam_size=settings.whisper_beam_size, cpu_threads=settings.whisper_cpu_threads,
        task="translate", on_segment=lambda end_s, _duration: progress.advance(end_s),
    )
    # Whisper's translated segments are sentences already; the cleanup's sentence cuts would need word times,
    # which a translation has none of (it would spread them evenly and claim seconds it does not know).
    write_atomic(ref.transcript_translation, json.dumps(english.to_dict()))
    return TranslateResult(segments=len(english.segments), model=english.model,
                           note=None if english.segments else "the translation came out empty")


@stage_task("translate")
def translate(ref: DocumentRef) -> TranslateResult:
    """The recording in English, from the language it was heard in, each segment with its seconds."""
    return translate_document(ref)
