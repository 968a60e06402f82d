"""A short summary of a document, each sentence cited to its page or seconds.

Extractive by default: the document's sentences (from its chunks, so each knows its page, heading or time)
are embedded with the search model, and the ones closest to the document's centre are taken, each new one
penalised by its likeness to those already taken (maximal marginal relevance), then put back in reading order.
With an LLM configured, the model writes a summary from those cited sentences; it is kept only if every name,
number and date in it is in them (a summary must never name a person or a figure the document does not), so
the extractive summary stays otherwise, and a redacted document's placeholders stay placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from ingestflow.chunks import Chunk
from ingestflow.text import sentences

if TYPE_CHECKING:
    import numpy as np

    from ingestflow.settings import Settings

# Enough to tell what a document is about before opening it.
MAX_SENTENCES = 5
# A document's sentences beyond this are sampled evenly: a 500-page report is summarised in seconds, not minutes.
MAX_CANDIDATES = 600
MIN_WORDS = 5
# How much a sentence's likeness to those already taken counts against it.
REDUNDANCY = 0.5
# The prompt's version: the summaries made under another are redone by the backfill.
PROMPT_VERSION = "1"


class CitedSentence(BaseModel):
    text: str
    chunk_index: int
    page: int | None = None
    page_end: int | None = None
    headings: list[str] = []
    start_s: float | None = None
    end_s: float | None = None


class Summary(BaseModel):
    mode: Literal["extractive", "llm"]
    text: str
    sentences: list[CitedSentence]  # what it is drawn from, each where the document says it
    model: str | None = None  # the LLM that wrote it (llm mode)
    note: str | None = None  # why an LLM's summary was not kept


def candidates(chunks: Sequence[Chunk]) -> list[CitedSentence]:
    """The document's sentences in reading order, each with its chunk's citation."""
    out = []
    for chunk in chunks:
        for sentence in sentences(" ".join(chunk.text.split())):
            if len(sentence.split()) >= MIN_WORDS:
                out.append(CitedSentence(
                    text=sentence.strip(), chunk_index=chunk.index, page=chunk.page_start, page_end=chunk.page_end,
                    headings=list(chunk.headings), start_s=chunk.start_s, end_s=chunk.end_s))
    if len(out) > MAX_CANDIDATES:
        step = len(out) / MAX_CANDIDATES
        out = [out[int(i * step)] for i in range(MAX_CANDIDATES)]
    return out


def how_many(n: int) -> int:
    """A few sentences for a note, up to MAX_SENTENCES for a long document."""
    return max(1, min(MAX_SENTENCES, 1 + n // 8))


def central(vectors: np.ndarray, k: int) -> list[int]:
    """Indices of k rows close to the centre of all and unlike each other, in reading order."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-9)
    centre = unit.mean(axis=0)
    relevance = unit @ centre
    chosen: list[int] = []
    while len(chosen) < min(k, len(unit)):
        penalty = (unit @ unit[chosen].T).max(axis=1) if chosen else np.zeros(len(unit))
        # Rounded so that a tie within float noise goes to the earlier sentence: the same document batched with
        # others embeds a few 1e-7 differently, and two sentences alone are exactly as close to their centre.
        score = np.round(relevance - REDUNDANCY * penalty, 6)
        score[chosen] = -np.inf
        chosen.append(int(score.argmax()))
    return sorted(chosen)


def extractive(chunks: Sequence[Chunk], embed: Callable[[list[str]], np.ndarray]) -> Summary:
    return extractive_many([chunks], embed)[0]


def extractive_many(documents: Sequence[Sequence[Chunk]], embed: Callable[[list[str]], np.ndarray]) -> list[Summary]:
    """Each document's extractive summary, its sentences embedded in one call with all the others': a group of
    notes is summarised with one model call, as it is embedded (one call per note cost the summarise stage most of
    its time on short notes)."""
    pools = [candidates(chunks) for chunks in documents]
    texts = [s.text for pool in pools for s in pool]
    vectors = embed(texts) if texts else None
    summaries, offset = [], 0
    for pool in pools:
        if vectors is None or not pool:
            summaries.append(Summary(mode="extractive", text="", sentences=[]))
            continue
        picked = [pool[i] for i in central(vectors[offset : offset + len(pool)], how_many(len(pool)))]
        offset += len(pool)
        summaries.append(Summary(mode="extractive", text=" ".join(s.text for s in picked), sentences=picked))
    return summaries


SYSTEM_PROMPT = (
    "You summarise documents for a knowledge base. Write a summary of at most three sentences using only the "
    "numbered passages given. Do not add names, numbers or dates that are not in them. Keep placeholders such "
    "as <PERSON> exactly as written. Reply with the summary only."
)
COMPLETION_PROMPT = "Passages:\n{text}\n\nA summary of at most three sentences, using only the passages above:\n"

_NUMBER = re.compile(r"\d[\d,.:/-]*\d|\d")
_PLACEHOLDER = re.compile(r"<[A-Z_]+>")


def unsupported(summary: str, passages: str) -> list[str]:
    """Names, numbers and dates the summary gives that the passages do not (case and spacing aside)."""
    from ingestflow.models import spacy_pipeline
    from ingestflow.settings import get_settings
    from ingestflow.text import ENTITY_LABELS

    source = " ".join(passages.lower().split())
    said = [m.group(0) for m in _NUMBER.finditer(summary)]
    plain = _PLACEHOLDER.sub(" ", summary)
    said += [e.text for e in spacy_pipeline(get_settings().spacy_model)(plain).ents if e.label_ in ENTITY_LABELS]
    said += [p for p in _PLACEHOLDER.findall(summary)]
    return [s for s in dict.fromkeys(said) if " ".join(s.lower().split()) not in source]


def with_llm(base: Summary, settings: Settings) -> Summary:
    """The LLM's summary of the extractive one's sentences, or the extractive one with the reason it was not."""
    from ingestflow.errors import PermanentError
    from ingestflow.llm import LLMClient, Prompt

    if not base.sentences:
        return base
    passages = "\n".join(f"[{i}] {s.text}" for i, s in enumerate(base.sentences, 1))
    prompt = Prompt(SYSTEM_PROMPT, COMPLETION_PROMPT, stop=("\n\n", "Passages:"))
    try:
        with LLMClient(settings) as client:
            answer = " ".join(client.complete(passages, prompt, max_tokens=200).split())
            label = client.label
    except PermanentError as exc:  # a misconfigured LLM must not cost the document its summary
        return base.model_copy(update={"note": f"LLM unusable: {exc.message}"})
    answer = re.sub(r"\s*\[\d+\]", "", answer).strip()
    if not answer:
        return base.model_copy(update={"note": f"LLM summary rejected ({label}): empty answer"})
    invented = unsupported(answer, passages)
    if invented:
        return base.model_copy(update={"note": f"LLM summary rejected ({label}): it names "
                                               f"{', '.join(invented[:5])}, which the document does not"})
    return Summary(mode="llm", text=answer, sentences=base.sentences, model=label)
