"""Deterministic cleanup of a raw transcript: whitespace, capitalised sentence starts, fragments joined into
sentences, paragraphs at long pauses. Never adds or drops a word."""

from __future__ import annotations

import re

from ingestflow.audio.transcript import Segment, Transcript, Word, join_words, segment_words

# A pause this long between two words starts a new paragraph. Speakers pause 0.2-0.8 s between sentences;
# 1.5 s and more is a change of thought or of speaker.
PARAGRAPH_PAUSE_S = 1.5
# A "sentence" with no punctuation for this long is cut at Whisper's own segment boundary instead, so cleanup
# of an unpunctuated ramble never yields one minute-long subtitle cue or one giant segment.
MAX_SENTENCE_S = 30.0

_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*$")
# Titles Whisper writes with a full stop that do not end a sentence ("Mr. Smith").
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "e.g.", "i.e."})


def _capitalise(word: str) -> str:
    for i, ch in enumerate(word):
        if ch.isalpha():
            return word[:i] + ch.upper() + word[i + 1 :]
        if ch.isdigit():
            return word
    return word


def clean(transcript: Transcript) -> Transcript:
    """Deterministic cleanup: whitespace, capitalised sentence starts, fragments joined into sentences and
    paragraphs at pauses longer than PARAGRAPH_PAUSE_S. Never adds or drops a word; idempotent.

    Each output segment is one sentence (or one piece of an over-long unpunctuated run) carrying `paragraph`.
    """
    # Flatten to words, remembering where Whisper's own segments ended: those are the fallback cut points.
    flat: list[tuple[Word, bool]] = []
    for seg in transcript.segments:
        ws = [w for w in segment_words(seg) if w["word"].strip()]
        for i, w in enumerate(ws):
            flat.append((w, i == len(ws) - 1))

    out: list[Segment] = []
    paragraph = 0
    current: list[Word] = []
    sentence_start = True  # the next word begins a sentence

    def flush() -> None:
        if not current:
            return
        out.append(Segment(id=len(out), start=current[0]["start"], end=current[-1]["end"], text=join_words(current),
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
