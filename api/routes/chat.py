"""POST /v1/chat and GET /v1/conversations: cited answers, with each conversation's turns kept as memory."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from api import errors
from api.deps import NO_NUL, CurrentUser, IdPath, PageDep, QueryBudget, SessionDep, SettingsDep
from ingestflow.answering.chat import ask
from ingestflow.answering.search import SearchFilters, Source
from ingestflow.db import Conversation, Turn

router = APIRouter(prefix="/v1", tags=["chat"], responses=errors.documented(401))


class ChatRequest(BaseModel):
    query: str = Field(min_length=1, max_length=4000, pattern=NO_NUL)
    conversation_id: str | None = Field(default=None, max_length=32, pattern=NO_NUL)
    # Optional narrowing of the documents searched, as in /v1/search.
    kind: Literal["text", "audio"] | None = None
    document_id: str | None = Field(default=None, pattern=NO_NUL)
    collection: str | None = Field(default=None, pattern=NO_NUL)


class ContextTurnOut(BaseModel):
    turn_id: str
    index: int
    role: str
    text: str
    score: float


class ChatResponse(BaseModel):
    answer: str
    mode: Literal["extractive", "llm"]
    sources: list[Source]
    conversation_id: str
    chat_context_used: list[ContextTurnOut]
    turn_id: str
    question_turn_id: str
    notes: list[str] = []


class TurnOut(BaseModel):
    id: str
    index: int
    role: str
    text: str
    sources: list[Source]  # as the answer cited them when it was made
    created_at: datetime


class ConversationOut(BaseModel):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    turns: list[TurnOut] = []


class ConversationList(BaseModel):
    items: list[ConversationOut]


# Sync on purpose: FastAPI runs it in a thread, and the model, Chroma and the LLM are blocking calls. It opens
# only short database transactions of its own (SQLite takes the write lock at BEGIN), never one held while
# the answer is being made.
@router.post("/chat", response_model=ChatResponse, responses=errors.documented(400, 404, 409, 429, 503))
def chat(body: ChatRequest, user: CurrentUser, settings: SettingsDep, _budget: QueryBudget) -> ChatResponse:
    filters = SearchFilters(kind=body.kind, document_id=body.document_id, collection=body.collection)
    result = ask(settings, user.id, body.query, body.conversation_id, filters)
    return ChatResponse(
        answer=result.answer,
        mode="llm" if result.mode == "llm" else "extractive",
        sources=result.sources,
        conversation_id=result.conversation_id,
        chat_context_used=[ContextTurnOut(**asdict(t)) for t in result.context],
        turn_id=result.turn_id,
        question_turn_id=result.question_turn_id,
        notes=result.notes,
    )


def _conversation_out(conv: Conversation, turns: list[Turn] | None = None) -> ConversationOut:
    return ConversationOut(
        id=conv.id, title=conv.title, created_at=conv.created_at, updated_at=conv.updated_at,
        turns=[TurnOut(id=t.id, index=t.index, role=t.role, text=t.text, created_at=t.created_at,
                       sources=[Source.model_validate(x) for x in t.sources or []]) for t in turns or []],
    )


@router.get("/conversations", response_model=ConversationList)
def list_conversations(
    db: SessionDep, user: CurrentUser, page: PageDep,
) -> ConversationList:
    convs = db.scalars(
        select(Conversation).where(Conversation.owner_id == user.id)
        .order_by(Conversation.updated_at.desc(), Conversation.id).limit(page.limit).offset(page.offset)
    ).all()
    return ConversationList(items=[_conversation_out(c) for c in convs])


@router.get("/conversations/{conversation_id}", response_model=ConversationOut, responses=errors.documented(404))
def get_conversation(conversation_id: IdPath, db: SessionDep, user: CurrentUser) -> ConversationOut:
    conv = db.get(Conversation, conversation_id)
    if conv is None or conv.owner_id != user.id:
        # A foreign conversation answers exactly like a missing one.
        raise HTTPException(status.HTTP_404_NOT_FOUND, "conversation not found")
    turns = db.scalars(select(Turn).where(Turn.conversation_id == conv.id).order_by(Turn.index)).all()
    return _conversation_out(conv, list(turns))
