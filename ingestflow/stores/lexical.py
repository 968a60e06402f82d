"""Lexical search in PostgreSQL: BM25 over the full-text vectors of chunk texts (and conversation turns).

The embed stage stores each chunk's text beside its vector (`replace_chunks`, replaced per document like the
vectors, so a repeat leaves the same rows); PostgreSQL derives `tsv` (English stems, no stop words) and
`token_count` from it and its heading path. A query's lexemes are matched with OR, and each matching chunk
is scored with BM25: a rare term (an invoice number, a name, a figure in a table) weighs far more than a
common one, which PostgreSQL's own ts_rank cannot do, as it knows nothing of how common a term is. Each hit
also says whether it holds every query term (`all_terms`) and every exact term of the query (`exact`: the
words that carry a digit, like an invoice number or a figure, and the capitalised names past the first
word), what the fusion in ingestflow/answering/retrieval.py uses to put exact matches first. Without PostgreSQL
(SQLite) there is no lexical search: hybrid search is then vector search alone.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from ingestflow.db import ChunkText, Document, get_engine, session_scope
from ingestflow.stores.vectors import NoneOf

K1, B = 1.2, 0.75  # BM25's usual constants
COMMON, COMMON_SHARE = 200, 0.05  # a term in more chunks than both is common
# Columns a search may be narrowed by, per table (the filters of ingestflow.answering.search.Scope, or a conversation).
_FILTERABLE = {"chunks": ("kind", "collection", "document_id"), "turns": ("conversation_id",)}


@dataclass(frozen=True)
class LexicalHit:
    id: str
    document_id: str  # a turn's conversation id
    text: str
    metadata: dict[str, Any]
    score: float  # BM25
    all_terms: bool  # holds every term of the query
    exact: bool  # holds every exact term of the query (there are some)


_TOKEN = re.compile(r"[^\s\"“”()\[\]{},;:!?]+")


def exact_terms(query: str) -> str | None:
    """The query's words that name one thing: with a digit (INV-2024-0042, 1868, 3D), or capitalised after the
    first word (a question's first word is capitalised anyway). None when there are none."""
    words = [w.strip(".'’") for w in _TOKEN.findall(query)]
    exact = [w for i, w in enumerate(words) if w and (any(c.isdigit() for c in w) or (i > 0 and w[0].isupper()))]
    return " ".join(exact) or None


def available(url: str) -> bool:
    return get_engine(url).dialect.name == "postgresql"


def replace_chunks(db: Session, document_ids: Sequence[str], rows: Sequence[ChunkText]) -> None:
    """Each document's chunk rows replaced as a whole. Documents deleted meanwhile are skipped: their rows
    would only be taken back by the cascade, and inserting them would fail on the foreign key."""
    if not document_ids:
        return
    # FOR KEY SHARE: a DELETE of one of these documents waits until this transaction is done.
    alive = set(db.scalars(select(Document.id).where(Document.id.in_(document_ids)).with_for_update(key_share=True)))
    db.execute(delete(ChunkText).where(ChunkText.document_id.in_(document_ids)))
    db.add_all([r for r in rows if r.document_id in alive])


def insert_chunks(db: Session, rows: Sequence[ChunkText]) -> int:
    """Rows added where missing (a migration's copy from the vector store); rows of deleted documents are
    skipped. Returns how many were added."""
    alive = set(db.scalars(select(Document.id).where(Document.id.in_({r.document_id for r in rows}))))
    have = set(db.scalars(select(ChunkText.id).where(ChunkText.id.in_([r.id for r in rows]))))
    new = [r for r in rows if r.document_id in alive and r.id not in have]
    db.add_all(new)
    return len(new)


def texts(url: str, owner_id: str, ids: Sequence[str]) -> dict[str, str]:
    """The owner's chunk texts by id (ids that are not theirs, or not there, are left out)."""
    if not ids or not available(url):
        return {}
    with session_scope(url, read_only=True) as db:
        rows = db.execute(select(ChunkText.id, ChunkText.text).where(ChunkText.owner_id == owner_id,
                                                                     ChunkText.id.in_(list(ids))))
        return {row.id: row.text for row in rows}


def delete_document(url: str, document_id: str) -> int:
    """Removes the document's rows; how many there were."""
    with session_scope(url) as db:
        result: CursorResult[Any] = db.execute(  # type: ignore[assignment]
            delete(ChunkText).where(ChunkText.document_id == document_id))
        return int(result.rowcount or 0)


def _scope_sql(table: str, conditions: Mapping[str, Any], params: dict[str, Any]) -> str:
    clauses = ["c.owner_id = :owner"]
    for key, value in conditions.items():
        if value is None:
            continue
        if key not in _FILTERABLE[table]:
            raise ValueError(f"{table} cannot be filtered by {key}")
        if isinstance(value, NoneOf):
            params[key] = list(value)
            clauses.append(f"NOT (c.{key} = ANY(:{key}))")
        elif isinstance(value, list | tuple):
            params[key] = list(value)
            clauses.append(f"c.{key} = ANY(:{key})")
        else:
            params[key] = value
            clauses.append(f"c.{key} = :{key}")
    return " AND ".join(clauses)


# One statement: the query's lexemes, the scope's size and mean length, each lexeme's document frequency and
# IDF, then BM25 summed over the lexemes each matching chunk holds. Backslashes cannot be quoted into a tsquery.
# Candidates are the chunks holding a term that is not common (or else the rarest term): a word in most chunks
# would make nearly every chunk a candidate and the search as slow as the store is large, for terms whose IDF
# barely moves a score. A chunk holding only common terms of the query is then not found by this list.
_BM25 = """
WITH q AS (
    SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', :query)) WHERE strpos(lexeme, '\\') = 0
), stats AS (
    SELECT count(*) AS n, coalesce(avg(c.token_count), 1) AS avglen FROM {table} c WHERE {scope}
), terms AS (
    SELECT q.lexeme, d.df, ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) AS idf
    FROM q CROSS JOIN stats s
    CROSS JOIN LATERAL (SELECT count(*) AS df FROM {table} c
                        WHERE {scope} AND c.tsv @@ quote_literal(q.lexeme)::tsquery) d
    WHERE d.df > 0
), ranked AS (
    SELECT c.id, sum(t.idf * (cardinality(u.positions) * (:k1 + 1))
                     / (cardinality(u.positions) + :k1 * (1 - :b + :b * c.token_count / s.avglen))) AS score,
           count(*) = (SELECT count(*) FROM q) AS all_terms,
           coalesce(c.tsv @@ plainto_tsquery('english', :exact), false) AS exact
    FROM {table} c CROSS JOIN stats s
    CROSS JOIN LATERAL unnest(c.tsv) AS u(lexeme, positions, weights)
    JOIN terms t ON t.lexeme = u.lexeme
    WHERE {scope} AND c.tsv @@ (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery FROM terms, stats s
                                WHERE df <= greatest(:common, s.n * :common_share)
                                   OR df = (SELECT min(df) FROM terms))
    GROUP BY c.id
    ORDER BY score DESC, c.id
    LIMIT :k
)
SELECT c.id, c.{parent} AS parent, c.text, {meta} AS meta, r.score, r.all_terms, r.exact
FROM ranked r JOIN {table} c ON c.id = r.id
ORDER BY r.score DESC, r.id
"""


def search(url: str, table: str, owner_id: str, query: str, k: int,
           conditions: Mapping[str, Any] | None = None) -> list[LexicalHit]:
    """The k best BM25 matches among the owner's rows of `table` ("chunks" or "turns") within `conditions`."""
    if k <= 0 or not query.strip() or not available(url):
        return []
    params: dict[str, Any] = {"owner": owner_id, "query": query, "k": k, "k1": K1, "b": B,
                              "exact": exact_terms(query), "common": COMMON, "common_share": COMMON_SHARE}
    scope = _scope_sql(table, conditions or {}, params)
    if table == "chunks":
        parent, meta = "document_id", "c.meta"
    else:
        parent, meta = "conversation_id", "json_build_object('role', c.role, 'index', c.index)"
    sql = _BM25.format(table=table, scope=scope, parent=parent, meta=meta)
    with session_scope(url, read_only=True) as db:
        rows = db.execute(text(sql), params).all()
    return [LexicalHit(r.id, r.parent, r.text, dict(r.meta or {}), float(r.score), bool(r.all_terms), bool(r.exact))
            for r in rows]
