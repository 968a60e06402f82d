"""Chunks of a transcript by time, each within a token budget and pointing at the seconds that say it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ingestflow.audio.transcript import Transcript, Word, join_words, segment_words
from ingestflow.chunks import Chunk


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
            return count_tokens(join_words(words[i:j])) <= max_tokens

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


def _split_by_time(words: list[Word], max_s: float) -> list[list[Word]]:
    """Consecutive pieces of a run of words, each spanning at most max_s (a single longer word stays whole)."""
    pieces: list[list[Word]] = []
    for word in words:
        if pieces and word["end"] - pieces[-1][0]["start"] <= max_s:
            pieces[-1].append(word)
        else:
            pieces.append([word])
    return pieces


# Windows of a few sentences. A citation is only as precise as the window it points at, and one vector per window
# blurs every topic in it: with 60 s chunks, every recording of a minute or less was cited as one window from its
# first second to its last (issue 22). A window closes once it spans TARGET_S, before a sentence would take it
# past MAX_S (or past HARD_S while it is still under MIN_S), and at a paragraph break once it spans MIN_S; a
# single sentence longer than HARD_S is cut by its word timestamps into pieces of at most MAX_S.
MIN_S, TARGET_S, MAX_S, HARD_S = 10.0, 20.0, 30.0, 45.0


def chunk_by_time(
    transcript: Transcript,
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
) -> list[Chunk]:
    """Windows of consecutive sentences (segments of a raw transcript), 10-30 s long where the sentences allow,
    each within `max_tokens` by `count_tokens` and pointing at the seconds that say it."""
    units: list[tuple[float, float, str, int]] = []  # start, end, text, paragraph
    for i, seg in enumerate(transcript.segments):
        text = seg.get("text", "").strip()
        if not text:
            continue
        para = seg.get("paragraph", i if not transcript.cleaned else 0)
        if count_tokens(text) <= max_tokens and float(seg["end"]) - float(seg["start"]) <= HARD_S:
            units.append((float(seg["start"]), float(seg["end"]), text, para))
            continue
        words = [w for w in segment_words(seg) if w["word"].strip()]
        for fitting in _split_to_fit(words, count_tokens, max_tokens):
            for piece in _split_by_time(fitting, MAX_S):
                units.append((piece[0]["start"], piece[-1]["end"], join_words(piece), para))

    chunks: list[Chunk] = []
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
        chunks.append(Chunk(index=len(chunks), text=text, embed_text=text, start_s=round(current[0][0], 3),
                            end_s=round(current[-1][1], 3)))
        current.clear()

    for unit in units:
        if current:
            span = current[-1][1] - current[0][0]
            joined = unit[1] - current[0][0]
            new_paragraph = transcript.cleaned and unit[3] != current[-1][3]
            if (
                span >= TARGET_S
                or (joined > MAX_S and (span >= MIN_S or joined > HARD_S))
                or (new_paragraph and span >= MIN_S)
                or count_tokens(render([*current, unit])) > max_tokens
            ):
                flush()
        current.append(unit)
    flush()
    return chunks
