"""Subtitles (SRT and WebVTT, written by webvtt-py) from a transcript: one cue per segment, long ones split by
word timestamps and wrapped into at most two lines."""

from __future__ import annotations

import io

from webvtt import Caption, WebVTT

from ingestflow.audio.transcript import Transcript, Word, join_words, segment_words

# Subtitle conventions (BBC/Netflix style guides): at most two lines of ~42 characters, at most ~7 s on screen.
CUE_MAX_CHARS = 84
CUE_LINE_CHARS = 42
CUE_MAX_S = 7.0


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
        words = [w for w in segment_words(seg) if w["word"].strip()]
        if (len(text) <= CUE_MAX_CHARS and seg["end"] - seg["start"] <= CUE_MAX_S) or not words:
            cues.append((seg["start"], seg["end"], text))
            continue
        piece: list[Word] = []
        for w in words:
            candidate = [*piece, w]
            if piece and (len(join_words(candidate)) > CUE_MAX_CHARS or w["end"] - piece[0]["start"] > CUE_MAX_S):
                cues.append((piece[0]["start"], piece[-1]["end"], join_words(piece)))
                piece = [w]
            else:
                piece = candidate
        if piece:
            cues.append((piece[0]["start"], piece[-1]["end"], join_words(piece)))
    # Players reject cues that end before they start and some drop zero-length ones.
    fixed: list[tuple[float, float, str]] = []
    for start, end, text in cues:
        end = max(end, start + 0.2)
        fixed.append((start, end, text))
    return fixed


def _captions(transcript: Transcript, *, escape: bool) -> list[Caption]:
    from webvtt.models import Timestamp

    captions = []
    for start, end, text in _cues(transcript):
        # WebVTT cue text is markup: & and < must be escaped (which also defuses "-->"). SRT has no escapes,
        # and a "-->" in its text would be read as a timing line.
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") if escape else text.replace(
            "-->", "->")
        start_at, end_at = (str(Timestamp.from_seconds(max(0.0, t))) for t in (start, end))
        captions.append(Caption(start_at, end_at, text=_wrap(text)))
    return captions


def to_srt(transcript: Transcript) -> str:
    out = io.StringIO()
    # Players read <b>, <i> and <font> in SRT text as markup, and SRT cannot escape them: webvtt-py drops tags.
    WebVTT(captions=_captions(transcript, escape=False)).write(out, format="srt")
    return out.getvalue() + "\n" if out.getvalue() else ""  # it leaves out the file's final newline


def to_vtt(transcript: Transcript) -> str:
    return WebVTT(captions=_captions(transcript, escape=True)).content


def _seconds(stamp: str) -> float:
    """'00:01:02.500' (WebVTT) or '00:01:02,500' (SRT), hours optional, as seconds."""
    parts = stamp.replace(",", ".").split(":")
    return round(float(sum(float(p) * 60**i for i, p in enumerate(reversed(parts)))), 3)


def read_cues(data: bytes, fmt: str, language: str | None) -> Transcript:
    """A subtitle file (fmt "srt" or "vtt") as a raw transcript, a segment per cue with its seconds, read in the
    encoding it was saved in; markup (<i>, <v Speaker>) and entities are reduced to the words. The improve stage
    joins the cues into sentences as it joins Whisper's segments. Raises CorruptInput when no cue can be read."""
    import html
    from importlib.metadata import version

    from webvtt import from_buffer
    from webvtt.errors import MalformedFileError

    from ingestflow.audio.transcript import Segment
    from ingestflow.errors import CorruptInput
    from ingestflow.text_encoding import decode

    label = "SRT" if fmt == "srt" else "WebVTT"
    text = decode(data).text.lstrip("\ufeff")
    try:
        captions = from_buffer(io.StringIO(text), format=fmt).captions
        segments = [Segment(id=i, start=_seconds(c.start), end=_seconds(c.end), text=words)
                    for i, c in enumerate(captions) if (words := " ".join(html.unescape(c.text).split()))]
    except (MalformedFileError, ValueError) as exc:
        raise CorruptInput(f"the {label} file could not be read: {exc}") from exc
    if not captions and "-->" in text:  # webvtt-py skips a cue it cannot read; none read is a broken file
        raise CorruptInput(f"the {label} file could not be read: none of its cues has valid timings")
    return Transcript(language=language or "en", language_probability=0.0,
                      duration_s=max((s["end"] for s in segments), default=0.0), segments=segments,
                      model=f"{label} cues (webvtt-py {version('webvtt-py')})")
