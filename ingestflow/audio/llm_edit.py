"""Optional LLM pass of the improve stage, behind a word-level guard.

An LLM asked to "fix punctuation" of a transcript will, now and then, summarise, skip a sentence, answer the
speaker or continue the text. None of that may reach the knowledge base, so its output is only accepted when the
normalised word sequence is (almost) the raw transcript's: `guard()` aligns the two with difflib and rejects
drops or inventions beyond small tolerances. A rejected result is not an error: the caller then keeps the
deterministic cleanup (ingestflow.audio.cleanup). Long transcripts are sent in windows of whole sentences, each
guarded on its own, so one bad window names itself in the reason.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

from ingestflow.llm import LLMClient, Prompt
from ingestflow.text import sentences, words_of

if TYPE_CHECKING:
    from ingestflow.settings import Settings

log = logging.getLogger(__name__)


# Edits an honest cleanup makes: dropping hesitations and stutters, the odd spelling fix ("there" -> "their"
# counts as one drop plus one insertion). 5% leaves room for those and none for a skipped sentence.
MAX_DROPPED = 0.05
MAX_INSERTED = 0.05
FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "eh", "hmm", "hm", "mm", "mhm", "mmm"})
_SHOWN_SPANS = 4

SYSTEM_PROMPT = (
    "You correct speech-to-text transcripts. Fix punctuation, capitalisation and obvious mis-heard spellings. "
    "Keep every word in its order: do not add, remove, reorder, summarise or answer anything. "
    "Reply with the corrected transcript only."
)
# Base models have no instructions to follow, only a pattern to continue: show them the pattern.
COMPLETION_PROMPT = (
    "Below is a raw speech transcript, followed by the same transcript with punctuation and capitalisation "
    "corrected. Not a single word is added or removed.\n\nRaw transcript:\n{text}\n\nCorrected transcript:\n"
)
PROMPT = Prompt(SYSTEM_PROMPT, COMPLETION_PROMPT, stop=("\n\n", "Raw transcript:"))


@dataclass
class GuardedResult:
    accepted: bool
    # The LLM's text when accepted; when rejected, the rejected output (for the record) or None if nothing came.
    text: str | None
    reason: str
    model: str | None = None
    # The API path that answered, e.g. "/v1/completions" after a fallback from chat.
    endpoint: str | None = None
    elapsed_s: float = 0.0


# --------------------------------------------------------------------------------------------------- guard


def _spans(indices: list[int], words: list[str]) -> str:
    groups: list[list[int]] = []
    for i in indices:
        if groups and i == groups[-1][-1] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    shown = ", ".join(repr(" ".join(words[i] for i in g)) for g in groups[:_SHOWN_SPANS])
    more = f" and {len(groups) - _SHOWN_SPANS} more" if len(groups) > _SHOWN_SPANS else ""
    return shown + more


def guard(
    raw: str, improved: str, *, max_dropped: float = MAX_DROPPED, max_inserted: float = MAX_INSERTED
) -> tuple[bool, str]:
    """Does `improved` keep the words of `raw`? Compares lowercase word sequences (punctuation ignored).

    Dropped fillers ("um", "uh") and stutters ("I I think") are free; so are inserted fillers. Everything else
    dropped or inserted counts against its tolerance, as a share of the raw word count.
    """
    a, b = words_of(raw), words_of(improved)
    if not b:
        return (not a), ("empty output" if a else "nothing to check: both texts are empty")
    if not a:
        return False, f"invented {len(b)} words: {_spans(list(range(len(b))), b)} (the raw transcript is empty)"
    dropped: list[int] = []
    inserted: list[int] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            for k in range(i1, i2):
                stutter = (k > 0 and a[k - 1] == a[k]) or (k + 1 < len(a) and a[k + 1] == a[k])
                if a[k] not in FILLERS and not stutter:
                    dropped.append(k)
        if tag in ("insert", "replace"):
            inserted.extend(k for k in range(j1, j2) if b[k] not in FILLERS)
    problems = []
    if len(dropped) > max_dropped * len(a):
        problems.append(f"dropped {len(dropped)} of {len(a)} words: {_spans(dropped, a)}")
    if len(inserted) > max_inserted * len(a):
        problems.append(f"invented {len(inserted)} words: {_spans(inserted, b)}")
    if problems:
        return False, "; ".join(problems)
    return True, f"kept the words: {len(dropped)} of {len(a)} dropped, {len(inserted)} inserted"


# --------------------------------------------------------------------------------------------------- windows


def _windows(text: str, max_words: int) -> list[list[str]]:
    """Paragraphs of the text, each cut into windows of whole sentences of at most max_words words."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    out: list[list[str]] = []
    for para in paragraphs:
        windows: list[str] = []
        current: list[str] = []
        for sentence in sentences(" ".join(para.split())):
            words = sentence.split()
            # An unpunctuated run longer than a window is cut by words: a transcript may have no full stops.
            pieces = [words[i : i + max_words] for i in range(0, len(words), max_words)] or [[]]
            for piece in pieces:
                if current and len(current) + len(piece) > max_words:
                    windows.append(" ".join(current))
                    current = []
                current.extend(piece)
        if current:
            windows.append(" ".join(current))
        out.append(windows)
    return out


def _tidy(output: str) -> str:
    """Strip the wrapping chat models add around an answer; the guard judges the words inside."""
    text = output.strip()
    fence = re.fullmatch(r"```[\w-]*\n(.*?)\n?```", text, flags=re.S)
    if fence:
        text = fence.group(1).strip()
    # "Here is the corrected transcript:" on a line of its own.
    text = re.sub(r"^(?:here(?:'s| is)|sure|corrected transcript)[^\n]{0,80}:\s*\n", "", text, flags=re.I)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“":
        text = text[1:-1]
    return " ".join(text.split())



def improve_with_llm(raw_text: str, settings: Settings) -> GuardedResult:
    """Ask the configured LLM to tidy `raw_text` and keep the answer only if guard() accepts every window.

    Raises TransientError when the server cannot be reached, times out or answers 429/5xx (worth a retry), and
    PermanentError for configuration problems (unknown model, refused request). A rejection is a normal result.
    """
    if not settings.llm_backend:
        return GuardedResult(False, None, "no LLM configured")
    if not words_of(raw_text):
        return GuardedResult(False, None, "empty transcript: nothing to improve")
    client = LLMClient(settings)
    label = client.label
    t0 = time.monotonic()
    try:
        paragraphs = _windows(raw_text, max(20, settings.llm_window_words))
        total = sum(len(p) for p in paragraphs)
        done: list[str] = []
        n = 0
        for windows in paragraphs:
            outputs: list[str] = []
            for window in windows:
                n += 1
                # Room for the words plus punctuation; generous enough not to cut an honest answer short, tight
                # enough to stop a model that rambles on.
                answer = _tidy(client.complete(window, PROMPT, max_tokens=2 * len(window.split()) + 64))
                ok, reason = guard(window, answer)
                if not ok:
                    where = f"window {n} of {total}: " if total > 1 else ""
                    log.info("LLM output rejected (%s%s)", where, reason)
                    return GuardedResult(False, answer, where + reason, label, client.endpoint,
                                         time.monotonic() - t0)
                outputs.append(answer)
            done.append(" ".join(outputs))
        endpoint = client.endpoint
    finally:
        client.close()
    text = "\n\n".join(done)
    # Every window passed on its own; guarding the whole again gives one reason that speaks for the full text.
    ok, reason = guard(raw_text, text)
    if " ".join(raw_text.split()) == " ".join(text.split()):
        reason += "; the output is the input unchanged"  # base models often just echo: accepted, but say so
    return GuardedResult(ok, text, reason, label, endpoint, time.monotonic() - t0)
