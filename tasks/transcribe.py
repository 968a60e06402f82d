"""transcribe: faster-whisper with VAD and word timestamps; progress moves as segments arrive."""

from __future__ import annotations

import json

from ingestflow.atomic_files import write_atomic
from ingestflow.audio import whisper
from ingestflow.audio.probe import probe
from ingestflow.audio.subtitles import read_cues
from ingestflow.detect import SUBTITLE_FORMATS
from ingestflow.jobs.progress import StageProgress
from ingestflow.pipeline import TranscribeResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.common import stage_task


def transcribe_document(ref: DocumentRef) -> TranscribeResult:
    settings = get_settings()
    if ref.format in SUBTITLE_FORMATS:  # the words and their seconds are in the file: nothing to hear
        transcript = read_cues(ref.source.read_bytes(), ref.format, ref.language)
        write_atomic(ref.transcript_raw, json.dumps(transcript.to_dict()))
        return TranscribeResult(language=transcript.language, duration_s=transcript.duration_s,
                                segments=len(transcript.segments), model=transcript.model,
                                note="no cues with text" if transcript.is_empty else None)
    info = probe(ref.source)
    progress = StageProgress(ref.job_id, "Transcribing", info.duration_s, "s")
    # The multilingual model where the recording is in another language or is to be translated (its language
    # is then detected, not assumed English); PermanentError where none is installed.
    model = whisper.model_for(settings, language=ref.language, translate=ref.translate)
    transcript = whisper.transcribe(
        ref.source,
        model=model,
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        language=ref.language,
        beam_size=settings.whisper_beam_size,
        cpu_threads=settings.whisper_cpu_threads,
        on_segment=lambda end_s, _duration: progress.advance(end_s),
    )
    write_atomic(ref.transcript_raw, json.dumps(transcript.to_dict()))
    _model, label = whisper.configured_model(settings, model)
    return TranscribeResult(
        language=transcript.language,
        language_probability=transcript.language_probability,
        duration_s=transcript.duration_s,
        segments=len(transcript.segments),
        model=label,
        note="no speech found" if transcript.is_empty else None,
    )


@stage_task("transcribe")
def transcribe(ref: DocumentRef) -> TranscribeResult:
    """Segments with start/end seconds and word timestamps, in the detected or given language."""
    return transcribe_document(ref)
