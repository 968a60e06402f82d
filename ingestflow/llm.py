"""Optional LLM pass of the improve stage, behind a word-level guard.

An LLM asked to "fix punctuation" of a transcript will, now and then, summarise, skip a sentence, answer the
speaker or continue the text. None of that may reach the knowledge base, so its output is only accepted when the
normalised word sequence is (almost) the raw transcript's: `guard()` aligns the two with difflib and rejects
drops or inventions beyond small tolerances. A rejected result is not an error: the caller then keeps the
deterministic cleanup (ingestflow.audio.clean).

Two backends, both plain HTTP through httpx: Ollama (/api/chat) and any OpenAI-compatible server
(/v1/chat/completions, or /v1/completions for base models that have no chat template). Long transcripts are sent
in windows of whole sentences, each guarded on its own, so one bad window names itself in the reason.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

import httpx

from ingestflow.audio import words_of
from ingestflow.errors import PermanentError, TransientError

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
# Chat-template debris in a reply means the server formatted the chat with the wrong template (llama-cpp-python
# silently falls back to llama-2's for models without one); the plain completion endpoint is then the honest route.
_TEMPLATE_DEBRIS = re.compile(r"\[/?INST\]|<\|im_(?:start|end)\|>|<(?:start|end)_of_turn>|<\|(?:user|assistant)\|>")

_PROMPT_WORDS = words_of(SYSTEM_PROMPT)
_ECHO_NGRAM = 8


def _chat_misunderstood(answer: str) -> bool:
    """Signs that the model never saw a chat: template tokens in the reply, or the system prompt quoted back.

    OpenAI-compatible servers do not say whether a model has a chat template (llama-cpp-python formats the chat
    with llama-2's template instead; Gemma 3 270M then answers with a forum post quoting our instructions), so
    the reply itself is the evidence.
    """
    if _TEMPLATE_DEBRIS.search(answer):
        return True
    words = words_of(answer)
    grams = {tuple(_PROMPT_WORDS[i : i + _ECHO_NGRAM]) for i in range(len(_PROMPT_WORDS) - _ECHO_NGRAM + 1)}
    return any(tuple(words[i : i + _ECHO_NGRAM]) in grams for i in range(len(words) - _ECHO_NGRAM + 1))


# (server, model) pairs found unable to chat, so later calls in this process skip the wasted chat request.
_NO_CHAT: set[tuple[str, str]] = set()

DEFAULT_URLS = {"ollama": "http://127.0.0.1:11434", "openai": "http://127.0.0.1:8080"}


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
        sentences = re.split(r"(?<=[.!?…])\s+", " ".join(para.split()))
        windows: list[str] = []
        current: list[str] = []
        for sentence in sentences:
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


# --------------------------------------------------------------------------------------------------- backends


class _Backend:
    def __init__(self, settings: Settings) -> None:
        backend = settings.llm_backend
        if backend not in DEFAULT_URLS:
            raise PermanentError(f"unknown LLM backend {backend!r} (use 'ollama' or 'openai')")
        self.backend: str = backend
        base = (settings.llm_base_url or DEFAULT_URLS[backend]).rstrip("/")
        # Accept the URL with or without /v1: both spellings are common in OpenAI client configs.
        self.root = base.removesuffix("/v1") if backend == "openai" else base
        if backend == "ollama" and not settings.llm_model:
            raise PermanentError("INGESTFLOW_LLM_MODEL must name an Ollama model (e.g. llama3.2)")
        # llama.cpp-style servers serve one model and ignore the name, but the field is mandatory.
        self.model = settings.llm_model or "default"
        self.mode = settings.llm_openai_endpoint
        if self.mode == "auto" and (self.root, self.model) in _NO_CHAT:
            self.mode = "completions"
        self.endpoint: str | None = None
        headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
        timeout = httpx.Timeout(settings.llm_timeout_s, connect=min(10.0, settings.llm_timeout_s))
        self.http = httpx.Client(base_url=self.root, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        self.endpoint = path
        try:
            response = self.http.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise TransientError(f"LLM at {self.root} timed out on {path}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"LLM at {self.root} unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"LLM at {self.root}{path} answered {response.status_code}: {response.text[:300]}")
        return response

    @staticmethod
    def _json(response: httpx.Response, path: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise PermanentError(f"LLM {path} answered {response.status_code}: {response.text[:300]}")
        try:
            data = response.json()
        except ValueError as exc:
            raise PermanentError(f"LLM {path} answered with non-JSON: {response.text[:200]!r}") from exc
        if not isinstance(data, dict):
            raise PermanentError(f"LLM {path} answered with unexpected JSON: {str(data)[:200]}")
        return data

    def complete(self, text: str) -> str:
        # Room for the words plus punctuation; generous enough not to cut an honest answer short, tight enough
        # to stop a model that rambles on.
        max_tokens = 2 * len(text.split()) + 64
        if self.backend == "ollama":
            return self._ollama(text, max_tokens)
        if self.mode == "completions":
            return self._openai_completion(text, max_tokens)
        answer = self._openai_chat(text, max_tokens)
        if answer is None or (self.mode == "auto" and _chat_misunderstood(answer)):
            if self.mode == "auto":
                log.warning("LLM %s does not follow chat (no chat template?); using /v1/completions", self.model)
                self.mode = "completions"  # for the remaining windows
                _NO_CHAT.add((self.root, self.model))  # and for later calls in this process
                return self._openai_completion(text, max_tokens)
            raise PermanentError(f"model {self.model!r} has no chat template; set INGESTFLOW_LLM_OPENAI_ENDPOINT="
                                 "completions")
        return answer

    def _messages(self, text: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]

    def _ollama(self, text: str, max_tokens: int) -> str:
        body = {"model": self.model, "messages": self._messages(text), "stream": False,
                "options": {"temperature": 0, "num_predict": max_tokens}}
        response = self._post("/api/chat", body)
        if response.status_code == 404 and "not found" in response.text:
            raise PermanentError(f"Ollama has no model {self.model!r}: run `ollama pull {self.model}`")
        data = self._json(response, "/api/chat")
        return str((data.get("message") or {}).get("content") or "")

    def _openai_chat(self, text: str, max_tokens: int) -> str | None:
        """The chat answer, or None when this server/model cannot do chat (no template, no endpoint)."""
        body = {"model": self.model, "messages": self._messages(text), "temperature": 0, "max_tokens": max_tokens}
        response = self._post("/v1/chat/completions", body)
        if response.status_code in (404, 405, 501) or (
            response.status_code in (400, 422) and "template" in response.text.lower()
        ):
            log.info("chat endpoint refused (%s): %s", response.status_code, response.text[:200])
            return None
        data = self._json(response, "/v1/chat/completions")
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise PermanentError(f"unexpected chat completion: {str(data)[:200]}") from exc

    def _openai_completion(self, text: str, max_tokens: int) -> str:
        body = {"model": self.model, "prompt": COMPLETION_PROMPT.format(text=text), "temperature": 0,
                "max_tokens": max_tokens, "stop": ["\n\n", "Raw transcript:"]}
        data = self._json(self._post("/v1/completions", body), "/v1/completions")
        try:
            return str(data["choices"][0]["text"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise PermanentError(f"unexpected completion: {str(data)[:200]}") from exc


def improve_with_llm(raw_text: str, settings: Settings) -> GuardedResult:
    """Ask the configured LLM to tidy `raw_text` and keep the answer only if guard() accepts every window.

    Raises TransientError when the server cannot be reached, times out or answers 429/5xx (worth a retry), and
    PermanentError for configuration problems (unknown model, refused request). A rejection is a normal result.
    """
    if not settings.llm_backend:
        return GuardedResult(False, None, "no LLM configured")
    if not words_of(raw_text):
        return GuardedResult(False, None, "empty transcript: nothing to improve")
    backend = _Backend(settings)
    label = f"{backend.backend}:{backend.model}"
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
                answer = _tidy(backend.complete(window))
                ok, reason = guard(window, answer)
                if not ok:
                    where = f"window {n} of {total}: " if total > 1 else ""
                    log.info("LLM output rejected (%s%s)", where, reason)
                    return GuardedResult(False, answer, where + reason, label, backend.endpoint,
                                         time.monotonic() - t0)
                outputs.append(answer)
            done.append(" ".join(outputs))
        endpoint = backend.endpoint
    finally:
        backend.close()
    text = "\n\n".join(done)
    # Every window passed on its own; guarding the whole again gives one reason that speaks for the full text.
    ok, reason = guard(raw_text, text)
    if " ".join(raw_text.split()) == " ".join(text.split()):
        reason += "; the output is the input unchanged"  # base models often just echo: accepted, but say so
    return GuardedResult(ok, text, reason, label, endpoint, time.monotonic() - t0)
