"""Fast tier: the summarise stage's logic (issue 24, part 3): the central sentences of a document, each cited
where the document says it, and an LLM's summary kept only when it names nothing they do not. The LLM here is a
fake OpenAI-compatible server (no model that could write a summary runs on these machines) that answers what
each test scripts; the stage itself runs on the real stack in tests/test_e2e_redaction.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ingestflow.answering.summary import (
    Summary,
    candidates,
    extractive,
    extractive_many,
    how_many,
    unsupported,
    with_llm,
)
from ingestflow.chunks import Chunk
from ingestflow.models import embedding_model
from ingestflow.settings import Settings

CHUNKS = [Chunk(embed_text=c["text"], **c) for c in [
    {"index": 0, "text": "The library service ran a summer reading challenge for children aged four to eleven. "
                         "Six branches and the mobile library took part.", "page_start": 1, "page_end": 1,
     "headings": ["Summer Reading Challenge 2024"]},
    {"index": 1, "text": "Hillside branch saw sign-ups fall by a fifth after its opening hours were cut. "
                         "Staff there asked for the Saturday session back. The car park was resurfaced in May.",
     "page_start": 2, "page_end": 2, "headings": ["Results"]},
    {"index": 2, "text": "Children who finished the challenge borrowed twice as many books over the summer. "
                         "The service will repeat the challenge next year with a science theme.",
     "page_start": 3, "page_end": 3, "headings": ["Conclusions"]},
]]


def _embed(texts: list[str]) -> Any:
    return embedding_model(None).encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def test_the_summary_is_central_sentences_each_cited_in_reading_order() -> None:
    pool = candidates(CHUNKS)
    assert len(pool) == 7 and pool[0].page == 1 and pool[-1].headings == ["Conclusions"]
    summary = extractive(CHUNKS, _embed)
    assert summary.mode == "extractive" and len(summary.sentences) == how_many(7) == 1
    longer = extractive(CHUNKS * 3, _embed)  # 21 sentences: three of them, no two alike, in reading order
    assert len(longer.sentences) == 3 and len({s.text for s in longer.sentences}) == 3
    assert [s.chunk_index for s in longer.sentences] == sorted(s.chunk_index for s in longer.sentences)
    assert longer.text == " ".join(s.text for s in longer.sentences)
    assert "car park" not in longer.text  # the aside is the least central sentence of the report
    assert all(s.page in (1, 2, 3) for s in longer.sentences)


def test_a_recording_summary_is_cited_by_seconds_and_an_empty_one_is_empty() -> None:
    said = "Thanks for calling about the boiler. An engineer will come on Tuesday morning."
    chunks = [Chunk(index=0, text=said, embed_text=said, start_s=3.5, end_s=11.0)]
    summary = extractive(chunks, _embed)
    assert summary.sentences[0].start_s == 3.5 and summary.sentences[0].end_s == 11.0
    assert extractive([], _embed) == Summary(mode="extractive", text="", sentences=[])


def test_a_group_is_summarised_with_one_model_call_each_document_as_if_alone() -> None:
    """The summarise stage is batched: a group's sentences go to the model in one call, and each document's
    summary is the one it gets alone, an empty document's empty between them."""
    calls: list[int] = []

    def counted(texts: list[str]) -> Any:
        calls.append(len(texts))
        return _embed(texts)

    said = "Thanks for calling about the boiler. An engineer will come on Tuesday morning to look at it."
    recording = [Chunk(index=0, text=said, embed_text=said, start_s=3.5, end_s=11.0)]
    documents = [CHUNKS * 3, [], recording, CHUNKS]
    group = extractive_many(documents, counted)
    assert calls == [21 + 0 + 2 + 7]  # every candidate sentence, in one call
    alone = [extractive(chunks, _embed) for chunks in documents]
    assert [g.text for g in group] == [a.text for a in alone] and group[1].text == "" and group[2].sentences
    assert [s.chunk_index for s in group[0].sentences] == [s.chunk_index for s in alone[0].sentences]


def test_a_summary_naming_what_the_passages_do_not_is_unsupported() -> None:
    passages = "[1] Hillside branch saw sign-ups fall by a fifth in 2024. [2] <PERSON> runs the branch."
    assert unsupported("Hillside sign-ups fell by a fifth in 2024; <PERSON> runs it.", passages) == []
    assert unsupported("Hillside sign-ups fell by 35% in 2023.", passages) == ["35", "2023"]
    assert "Amara Okafor" in unsupported("Amara Okafor runs the Hillside branch.", passages)
    assert unsupported("<PHONE_NUMBER> was called.", passages) == ["<PHONE_NUMBER>"]


class _FakeLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint answering with whatever the test set."""

    answer = ""

    def do_POST(self) -> None:  # noqa: N802 (the http.server hook)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": _FakeLLM.answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def llm_settings() -> Iterator[Settings]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Settings(llm_backend="openai", llm_base_url=f"http://127.0.0.1:{server.server_port}/v1",
                       llm_model="fake", llm_openai_endpoint="chat")
    finally:
        server.shutdown()


def test_an_llm_summary_is_kept_only_when_it_names_nothing_new(llm_settings: Settings) -> None:
    base = extractive(CHUNKS * 3, _embed)
    _FakeLLM.answer = "Sign-ups fell at the Hillside branch, and children who finished borrowed more books."
    kept = with_llm(base, llm_settings)
    assert kept.mode == "llm" and kept.text == _FakeLLM.answer and kept.sentences == base.sentences
    _FakeLLM.answer = "Sign-ups at Hillside fell by 40% in 2019 under manager Jane Smith."
    rejected = with_llm(base, llm_settings)
    assert rejected.mode == "extractive" and rejected.text == base.text
    assert rejected.note is not None and "40" in rejected.note and "2019" in rejected.note, rejected.note
