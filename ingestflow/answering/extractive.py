"""The answer without an LLM: the sentences of the top passages closest to the question, each followed by the
[n] of its source."""

from __future__ import annotations

import re

import numpy as np

from ingestflow.answering.search import Source, embed_texts
from ingestflow.settings import Settings
from ingestflow.text import markdown_to_text
from ingestflow.text import sentences as split_sentences

ANSWER_PASSAGES = 4  # passages the extractive answer picks sentences from
MAX_SENTENCES = 3
SENTENCE_MARGIN = 0.12  # further sentences must score within this of the best one
MIN_SENTENCE_SCORE = 0.2  # below this nothing in the passages answers the question
EXTRA_SENTENCE_MIN = 0.5  # a second or third sentence must itself be this similar to the question
NOT_FOUND = "I could not find anything about that in your documents."

# Bullets as docling renders them from PDFs and lists; they end a sentence as well as a full stop does.
_BREAKS = re.compile(r"\n\s*\n|\s*[∞•▪◦]\s+|\n\s*(?:[-*]|\d+\.)\s+")


def sentences(text: str) -> list[str]:
    """The sentences of a passage that can stand in an answer: plain text, at least three words."""
    out = []
    for block in _BREAKS.split(markdown_to_text(text)):
        for sentence in split_sentences(" ".join(block.split())):
            sentence = re.sub(r"\s+([,.;:!?])", r"\1", sentence).strip(" -")
            if len(sentence.split()) >= 3:
                out.append(sentence)
    return out


def extractive_answer(settings: Settings, sources: list[Source], vector: list[float]) -> str:
    """The passages' sentences closest to the question's search vector, each cited.

    A sentence's score mixes its own similarity with its passage's, so a sentence that merely sounds like
    the question loses to one from the passage that is about it. The answer opens with the best sentence of
    the passage that ranked first (the hybrid ranking knows exact terms, which sentence similarity does not)
    where that sentence is on topic itself, then the best sentence overall; others join only when they are close
    to it and on topic themselves, so a weak question gets a short answer rather than a padded one.
    """
    candidates = [(s, text) for s in sources[:ANSWER_PASSAGES] for text in sentences(s.text)]
    if not candidates:
        return NOT_FOUND
    similarities = np.asarray(embed_texts(settings, [text for _, text in candidates])) @ np.asarray(vector)
    scored = []
    for i, ((src, text), similarity) in enumerate(zip(candidates, similarities.tolist(), strict=True)):
        scored.append((0.7 * similarity + 0.3 * src.vector_score, similarity, i, src, text))
    scored.sort(key=lambda r: (-r[0], r[2]))
    best = scored[0][0]
    if best < MIN_SENTENCE_SCORE:
        return NOT_FOUND
    lead = next((r for r in scored if r[3] is sources[0]), scored[0])
    if lead[1] < EXTRA_SENTENCE_MIN:
        # Nothing in the first-ranked passage is on topic itself: it ranked on a shared word ("Prepared for the
        # Board of Trustees", 0.41, for "who has to prepare the rail agreement", issue 22). The best sentence opens.
        lead = scored[0]
    picked: list[tuple[Source, str]] = [(lead[3], lead[4])]
    if lead is not scored[0]:
        picked.append((scored[0][3], scored[0][4]))
    for score, similarity, _, src, text in scored[1:]:
        if len(picked) == MAX_SENTENCES or score < best - SENTENCE_MARGIN:
            break
        if similarity >= EXTRA_SENTENCE_MIN and all(text != t for _, t in picked):  # overlapping chunks repeat
            picked.append((src, text))
    for src, _ in picked:
        src.cited = True
    return " ".join(f"{text.rstrip()} [{src.n}]" for src, text in picked)
