"""Text as the project reads and compares it: the normalised words of a text, markdown as plain text, sentences,
and the entity labels worth a node in the graph."""

from __future__ import annotations

import re
import unicodedata

from ingestflow.models import sentencizer

# spaCy labels worth a node: numbers, ordinals and percentages mostly add noise to a knowledge graph. The same
# set is what a query may name (retrieval), so the graph and the questions agree on what an entity is.
ENTITY_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
                           "DATE", "MONEY", "LANGUAGE"})

_WORD_CHARS = re.compile(r"[\w]+(?:['’][\w]+)*")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# Wikipedia-style footnote marks, with or without their link: "[[ 5 ]](#cite_note-5)", "[ 5 ]".
_FOOTNOTE = re.compile(r"\[\[\s*\d+\s*\]\](?:\([^)]*\))?|\[\s*\d+\s*\]")


def words_of(text: str) -> list[str]:
    """The normalised word sequence of a text: NFKC, lowercase, punctuation and case ignored.

    The single definition of "the same words" used by cleanup's tests, the LLM guard and WER.
    """
    text = unicodedata.normalize("NFKC", text).replace("’", "'").lower()
    return _WORD_CHARS.findall(text)


def word_error_rate(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """Word-level Levenshtein distance over the reference's length, on `words_of` (texts) or on word lists."""
    ref = words_of(reference) if isinstance(reference, str) else reference
    hyp = words_of(hypothesis) if isinstance(hypothesis, str) else hypothesis
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1] / max(1, len(ref))


def markdown_to_text(text: str) -> str:
    """Markdown as a reader (or NER) should see it: links and images by their text, no emphasis or footnote marks."""
    text = _FOOTNOTE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    return text.replace("**", "").replace("*", "")


def sentences(text: str) -> list[str]:
    """The sentences of a text by spaCy's sentencizer, each as written."""
    return [sent.text for sent in sentencizer()(text).sents]
