"""The one LLM client: Ollama (/api/chat) or any OpenAI-compatible server (/v1/chat/completions, or
/v1/completions for base models that have no chat template), plain HTTP through httpx.

Callers give a `Prompt`: the system prompt for chat, and the pattern a base model is asked to continue instead.
Errors are classified once: TransientError when the server cannot be reached, times out or answers 429/5xx
(worth a retry), PermanentError for configuration problems (unknown model, refused request).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ingestflow.errors import PermanentError, TransientError
from ingestflow.text import words_of

if TYPE_CHECKING:
    from ingestflow.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_URLS = {"ollama": "http://127.0.0.1:11434", "openai": "http://127.0.0.1:8080"}
# Chat-template debris in a reply means the server formatted the chat with the wrong template (llama-cpp-python
# silently falls back to llama-2's for models without one); the plain completion endpoint is then the honest route.
_TEMPLATE_DEBRIS = re.compile(r"\[/?INST\]|<\|im_(?:start|end)\|>|<(?:start|end)_of_turn>|<\|(?:user|assistant)\|>")
_ECHO_NGRAM = 8

# (server, model) pairs found unable to chat, so later calls in this process skip the wasted chat request.
_NO_CHAT: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Prompt:
    system: str
    # What a base model continues, with `{text}` where the user's text goes.
    completion: str
    stop: tuple[str, ...] = ()


def _chat_misunderstood(answer: str, system: str) -> bool:
    """Signs that the model never saw a chat: template tokens in the reply, or the system prompt quoted back.

    OpenAI-compatible servers do not say whether a model has a chat template (llama-cpp-python formats the chat
    with llama-2's template instead; Gemma 3 270M then answers with a forum post quoting our instructions), so
    the reply itself is the evidence.
    """
    if _TEMPLATE_DEBRIS.search(answer):
        return True
    prompt, words = words_of(system), words_of(answer)
    grams = {tuple(prompt[i : i + _ECHO_NGRAM]) for i in range(len(prompt) - _ECHO_NGRAM + 1)}
    return any(tuple(words[i : i + _ECHO_NGRAM]) in grams for i in range(len(words) - _ECHO_NGRAM + 1))


class LLMClient:
    """One configured server and model; `endpoint` is the API path that answered last."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
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
        self.http = httpx.Client(base_url=self.root, headers=headers, timeout=timeout, transport=transport)

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.model}"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def complete(self, text: str, prompt: Prompt, max_tokens: int) -> str:
        """The model's answer to `text` under `prompt`, as the server gave it."""
        if self.backend == "ollama":
            return self._ollama(text, prompt, max_tokens)
        if self.mode == "completions":
            return self._openai_completion(text, prompt, max_tokens)
        answer = self._openai_chat(text, prompt, max_tokens)
        if answer is None or (self.mode == "auto" and _chat_misunderstood(answer, prompt.system)):
            if self.mode == "auto":
                log.warning("LLM %s does not follow chat (no chat template?); using /v1/completions", self.model)
                self.mode = "completions"  # for the remaining requests of this client
                _NO_CHAT.add((self.root, self.model))  # and for later clients in this process
                return self._openai_completion(text, prompt, max_tokens)
            raise PermanentError(f"model {self.model!r} has no chat template; set INGESTFLOW_LLM_OPENAI_ENDPOINT="
                                 "completions")
        return answer

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

    @staticmethod
    def _messages(text: str, prompt: Prompt) -> list[dict[str, str]]:
        return [{"role": "system", "content": prompt.system}, {"role": "user", "content": text}]

    def _ollama(self, text: str, prompt: Prompt, max_tokens: int) -> str:
        body = {"model": self.model, "messages": self._messages(text, prompt), "stream": False,
                "options": {"temperature": 0, "num_predict": max_tokens}}
        response = self._post("/api/chat", body)
        if response.status_code == 404 and "not found" in response.text:
            raise PermanentError(f"Ollama has no model {self.model!r}: run `ollama pull {self.model}`")
        data = self._json(response, "/api/chat")
        return str((data.get("message") or {}).get("content") or "")

    def _openai_chat(self, text: str, prompt: Prompt, max_tokens: int) -> str | None:
        """The chat answer, or None when this server/model cannot do chat (no template, no endpoint)."""
        body = {"model": self.model, "messages": self._messages(text, prompt), "temperature": 0,
                "max_tokens": max_tokens}
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

    def _openai_completion(self, text: str, prompt: Prompt, max_tokens: int) -> str:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt.completion.replace("{text}", text),
                                "temperature": 0, "max_tokens": max_tokens}
        if prompt.stop:
            body["stop"] = list(prompt.stop)
        data = self._json(self._post("/v1/completions", body), "/v1/completions")
        try:
            return str(data["choices"][0]["text"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise PermanentError(f"unexpected completion: {str(data)[:200]}") from exc
