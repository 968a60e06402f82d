"""Ask the knowledge base: answers cited from the owner's documents, with the conversation as memory.

Retrieval is split about 70/30: DOC_K passages from the documents (the sources an answer may cite) and
TURN_K earlier turns of the same conversation (what an LLM is shown to understand the question, never cited;
reported as chat_context_used). Passages go through the hybrid search of ingestflow/answering/retrieval.py (meaning and
words scored together); turns are found by meaning in the owner's `turns` vector collection and by their words
in SQL, where they are stored first, and the two lists fused by rank (a turn found only by its words has no
vector fetched to score it by).

Follow-ups ("and when is it due?") name nothing themselves, so the search vector is the mean of two readings:
the question alone, and the question appended to the conversation's last user questions (the latest turns,
read from SQL: a follow-up refers to what was just said, whatever it resembles). A passage's score
is then the mean of its similarity to both. A follow-up is carried by the second reading (the passage about
the earlier subject that also says "due" beats another document's due date, which only the bare question
matches), while a change of subject still wins on the first, which matches its passages far better than
the earlier subject's passages match the mixed text. The lexical list is read both ways too, at half weight
each: the follow-up's words matched with the subject it refers to, and alone.

With no LLM configured the answer is extractive: the sentences of the top passages closest to the question,
each followed by the [n] of its source. With an LLM (Ollama or OpenAI-compatible) the answer is generated
from the numbered passages only, and markers that point at no passage are dropped.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ingestflow.answering.extractive import NOT_FOUND, extractive_answer
from ingestflow.answering.ranking import fuse
from ingestflow.answering.retrieval import retrieve
from ingestflow.answering.search import SearchFilters, Source, embed_texts
from ingestflow.db import Conversation, Turn, session_scope, utcnow
from ingestflow.errors import IngestError, PermanentError, TransientError
from ingestflow.llm import LLMClient, Prompt
from ingestflow.settings import Settings
from ingestflow.stores import lexical
from ingestflow.stores.vectors import TURNS, chunk_id, chunk_index, open_vector_store
from ingestflow.text import markdown_to_text

log = logging.getLogger(__name__)

DOC_K = 7  # ~70% of what is retrieved ...
TURN_K = 3  # ... and ~30% from the conversation
CONDENSE_QUESTIONS = 2  # earlier user questions a follow-up is read with
HISTORY_TURNS = 8  # recent turns loaded from SQL for that
PROMPT_PASSAGE_CHARS = 1500

SYSTEM_PROMPT = (
    "You answer questions about the user's documents using ONLY the numbered passages you are given. "
    "After every statement, cite the passage it comes from with its number in square brackets, e.g. [2]. "
    "Do not use outside knowledge. If the passages do not contain the answer, say that the documents do not "
    "say. Earlier conversation is given only to understand what the question refers to; never cite it."
)


class ConversationNotFound(Exception):
    """Missing, or owned by someone else: both look the same to the caller."""


class ConversationBusy(Exception):
    """Another question to the same conversation was stored first; asking again is safe."""


@dataclass
class ContextTurn:
    turn_id: str
    index: int
    role: str
    text: str
    score: float


@dataclass
class ChatAnswer:
    answer: str
    mode: str  # "extractive" | "llm"
    sources: list[Source]
    conversation_id: str
    context: list[ContextTurn]
    turn_id: str  # the stored answer turn
    question_turn_id: str
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ conversations


def _history(settings: Settings, owner_id: str, conversation_id: str | None) -> list[Turn]:
    """The conversation's latest turns, oldest first; raises ConversationNotFound for a foreign id."""
    if conversation_id is None:
        return []
    with session_scope(settings.sqlalchemy_url) as db:
        conv = db.get(Conversation, conversation_id)
        if conv is None or conv.owner_id != owner_id:
            raise ConversationNotFound(conversation_id)
        recent = db.scalars(
            select(Turn).where(Turn.conversation_id == conversation_id).order_by(Turn.index.desc()).limit(HISTORY_TURNS)
        ).all()
    return list(reversed(recent))


def _store_turns(
    settings: Settings, owner_id: str, conversation_id: str | None, question: str, answer: str, sources: list[Source]
) -> tuple[str, Turn, Turn]:
    with session_scope(settings.sqlalchemy_url) as db:
        if conversation_id is None:
            conv = Conversation(owner_id=owner_id, title=" ".join(question.split())[:200])
            db.add(conv)
            db.flush()
        else:
            found = db.get(Conversation, conversation_id)
            if found is None or found.owner_id != owner_id:
                raise ConversationNotFound(conversation_id)  # deleted while we were answering
            conv = found
        last = db.scalar(select(func.max(Turn.index)).where(Turn.conversation_id == conv.id))
        first = 0 if last is None else last + 1
        asked = Turn(conversation_id=conv.id, owner_id=owner_id, index=first, role="user", text=question)
        answered = Turn(conversation_id=conv.id, owner_id=owner_id, index=first + 1, role="assistant", text=answer,
                        sources=[s.model_dump() for s in sources])
        db.add_all([asked, answered])
        conv.updated_at = utcnow()
        try:
            db.flush()
        except IntegrityError as exc:
            # PostgreSQL does not serialise the max()+1 above the way SQLite's BEGIN IMMEDIATE does.
            raise ConversationBusy(conv.id) from exc
        return conv.id, asked, answered


def _embed_turns(settings: Settings, owner_id: str, conversation_id: str, turns: list[Turn]) -> None:
    vectors = embed_texts(settings, [t.text for t in turns])
    # Ids are the turn ids, so a repeated write replaces instead of duplicating.
    open_vector_store(settings, TURNS).upsert(
        owner_id, [t.id for t in turns], vectors, [t.text for t in turns],
        [{"owner_id": owner_id, "conversation_id": conversation_id, "role": t.role, "index": t.index} for t in turns],
    )


def _related_turns(settings: Settings, owner_id: str, conversation_id: str, vector: list[float],
                   text: str) -> list[ContextTurn]:
    """The conversation's TURN_K turns closest to the question, by meaning and by words, fused."""
    by_meaning = open_vector_store(settings, TURNS).query(owner_id, vector, TURN_K * 2,
                                                          {"conversation_id": conversation_id})
    by_words = lexical.search(settings.sqlalchemy_url, "turns", owner_id, text, TURN_K * 2,
                              {"conversation_id": conversation_id})
    turns = {h.chunk_id: (h.text, h.metadata) for h in by_meaning}
    for h in by_words:
        turns.setdefault(h.id, (h.text, h.metadata))
    fused = fuse([([h.chunk_id for h in by_meaning], 1.0), ([h.id for h in by_words], 1.0)])
    best = sorted(turns, key=lambda tid: (-fused[tid], tid))[:TURN_K]
    return [ContextTurn(tid, int(turns[tid][1].get("index", 0)), str(turns[tid][1].get("role", "")), turns[tid][0],
                        round(fused[tid], 4)) for tid in best]


# ------------------------------------------------------------------------------------------------ retrieval


def query_vector(settings: Settings, question: str, earlier_questions: list[str]) -> list[float]:
    """The question's search vector: itself, or with history the normalised mean of the question alone and the
    question read after the earlier ones (every stored vector is normalised, so a dot product with this is
    the mean of the two cosines, up to one positive factor)."""
    if not earlier_questions:
        return embed_texts(settings, [question])[0]
    alone, condensed = embed_texts(settings, [question, " ".join([*earlier_questions, question])])
    mean = [a + b for a, b in zip(alone, condensed, strict=True)]
    norm = math.sqrt(sum(x * x for x in mean)) or 1.0
    return [x / norm for x in mean]


# ------------------------------------------------------------------------------------------------ LLM


def generate(prompt: str, settings: Settings, *, system: str = SYSTEM_PROMPT, max_tokens: int = 512,
             transport: httpx.BaseTransport | None = None) -> str:
    """One answer from the configured LLM, through the project's one client (ingestflow.llm)."""
    if not settings.llm_backend:
        raise PermanentError("no LLM configured")
    # Base models continue text instead of following a chat: give them the whole prompt to continue.
    with LLMClient(settings, transport=transport) as client:
        return client.complete(prompt, Prompt(system, f"{system}\n\n{{text}}"), max_tokens).strip()


def _where(source: Source) -> str:
    if source.start_s is not None:
        return f"{source.start_s:.0f}-{(source.end_s or source.start_s):.0f} s"
    if source.page is not None:
        return f"p. {source.page}" if source.page_end in (None, source.page) else f"pp. {source.page}-{source.page_end}"
    return ""


def widened(settings: Settings, owner_id: str, sources: list[Source]) -> dict[int, str]:
    """What the LLM reads of each recording's source: its window with the windows either side. Windows are a few
    sentences, cut so a citation points at the seconds that say it; the answer may need the sentence before or
    after. Only the text read widens: the source, and its citation, stay the window."""
    timed = [s for s in sources if s.start_s is not None]
    around = {s.n: (chunk_id(s.document_id, chunk_index(s.chunk_id) - 1),
                    chunk_id(s.document_id, chunk_index(s.chunk_id) + 1)) for s in timed}
    found = lexical.texts(settings.sqlalchemy_url, owner_id, [i for pair in around.values() for i in pair])
    return {s.n: " ".join(t for t in (found.get(around[s.n][0]), s.text, found.get(around[s.n][1])) if t)
            for s in timed}


def answer_prompt(question: str, sources: list[Source], context: list[ContextTurn],
                  reading: dict[int, str] | None = None) -> str:
    """The LLM's prompt: the earlier turns, the passages (each as `reading` widens it) and the question."""
    parts = []
    if context:
        earlier = "\n".join(f"{t.role}: {t.text}" for t in sorted(context, key=lambda t: t.index))
        parts.append(f"Earlier in this conversation (context only, not a source):\n{earlier}")
    reading = reading or {}
    passages = "\n\n".join(
        f"[{s.n}] {s.title}{' (' + _where(s) + ')' if _where(s) else ''}:\n"
        f"{markdown_to_text(reading.get(s.n, s.text))[:PROMPT_PASSAGE_CHARS]}"
        for s in sources
    )
    parts.append(f"Passages:\n{passages}")
    parts.append(f"Question: {question}\nAnswer, citing passages as [n]:")
    return "\n\n".join(parts)


def _keep_valid_citations(answer: str, sources: list[Source]) -> str:
    by_n = {s.n: s for s in sources}

    def check(m: re.Match[str]) -> str:
        source = by_n.get(int(m.group(1)))
        if source is None:
            return ""  # a marker pointing at no passage would be a false citation
        source.cited = True
        return m.group(0)

    return re.sub(r"\s?\[(\d+)\]", check, answer).strip()


# ------------------------------------------------------------------------------------------------ ask


def ask(
    settings: Settings, owner_id: str, question: str, conversation_id: str | None = None,
    filters: SearchFilters | None = None,
) -> ChatAnswer:
    history = _history(settings, owner_id, conversation_id)  # before any work: a foreign id is a 404
    earlier = [t.text for t in history if t.role == "user"][-CONDENSE_QUESTIONS:]
    vector = query_vector(settings, question, earlier)
    notes: list[str] = []

    hits = retrieve(settings, owner_id, question, DOC_K, filters, vector=vector, follows=" ".join(earlier)).hits
    sources = [Source.of(n, hit) for n, hit in enumerate(hits, start=1)]
    context: list[ContextTurn] = []
    if conversation_id is not None and history:
        try:
            context = _related_turns(settings, owner_id, conversation_id, vector, " ".join([*earlier, question]))
        except TransientError as exc:
            notes.append(f"conversation history unavailable: {exc.message}")

    mode = "extractive"
    answer = NOT_FOUND
    if sources and settings.llm_backend:
        try:
            prompt = answer_prompt(question, sources, context, widened(settings, owner_id, sources))
            answer = _keep_valid_citations(generate(prompt, settings), sources)
            mode = "llm"
        except IngestError as exc:
            log.warning("LLM answer failed, answering extractively: %s", exc)
            notes.append(f"LLM unavailable, extractive answer instead: {exc.message}")
    if sources and mode == "extractive":
        answer = extractive_answer(settings, sources, vector)

    conv_id, asked, answered = _store_turns(settings, owner_id, conversation_id, question, answer, sources)
    try:
        _embed_turns(settings, owner_id, conv_id, [asked, answered])
    except TransientError as exc:
        # The turns are stored in SQL; only their retrieval by meaning is lost, and the next question still
        # reads the recent ones from SQL.
        notes.append(f"turns stored but not indexed: {exc.message}")
    return ChatAnswer(answer=answer, mode=mode, sources=sources, conversation_id=conv_id, context=context,
                      turn_id=answered.id, question_turn_id=asked.id, notes=notes)
