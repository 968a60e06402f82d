"""Lexical search in PostgreSQL: BM25 over the full-text vectors of chunk texts (and conversation turns).

The embed stage stores each chunk's text beside its vector (`replace_chunks`, replaced per document like the
vectors, so a repeat leaves the same rows); PostgreSQL derives `tsv` (English stems, no stop words) and
`token_count` from it and its heading path, and triggers keep each owner's row count, total length and lexeme
frequencies beside them (migration 0009). A query's rarer lexemes are matched with OR, and each matching chunk
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

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from ingestflow.db import ChunkText, Document, get_engine, session_scope
from ingestflow.stores.vectors import NoneOf

K1, B = 1.2, 0.75  # BM25's usual constants
INSERT_BATCH = 1000  # chunk rows to a statement (8 parameters each; PostgreSQL takes 65,535)
CANDIDATE_BUDGET = 2000  # postings of the query terms a search reads at most (see _BM25)
COMMON, COMMON_SHARE = 200, 0.05  # a term in more chunks than both is common: it makes no candidates
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
    _insert(db, [r for r in rows if r.document_id in alive])


def _insert(db: Session, rows: Sequence[ChunkText]) -> None:
    """Rows added a thousand to a statement: the statistics' triggers run once per statement, and a row at a time
    (as the session's flush inserts) updated the owner's counts once per chunk, each update of a row already
    updated in the transaction slower than the last (a 5 MB document's chunks took minutes)."""
    columns = [c.key for c in ChunkText.__table__.columns]
    for start in range(0, len(rows), INSERT_BATCH):
        db.execute(insert(ChunkText).values([{c: getattr(r, c) for c in columns} | {"meta": r.meta or {}}
                                             for r in rows[start:start + INSERT_BATCH]]))


def insert_chunks(db: Session, rows: Sequence[ChunkText]) -> int:
    """Rows added where missing (a migration's copy from the vector store); rows of deleted documents are
    skipped. Returns how many were added."""
    alive = set(db.scalars(select(Document.id).where(Document.id.in_({r.document_id for r in rows}))))
    have = set(db.scalars(select(ChunkText.id).where(ChunkText.id.in_([r.id for r in rows]))))
    new = [r for r in rows if r.document_id in alive and r.id not in have]
    _insert(db, new)
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


# One statement: the query's lexemes; the owner's row count and mean length and each lexeme's document frequency
# (kept by triggers, migration 0009: counting them per query was 115 of 161 ms at 100k chunks); BM25 summed over
# the query lexemes each candidate holds (ts_filter keeps only those of its vector: unnesting the whole vector
# cost 16 us a candidate). The statistics are the owner's, whatever the filters, as a search engine's are its
# index's. Each lexeme's frequency is one lookup by the whole key (LIMIT 1 keeps the planner from joining on the
# owner alone and filtering 10k lexemes, which it did on a table not yet analysed) and the candidates are read
# once (MATERIALIZED: inlined, they were read again for every query term). Backslashes cannot be quoted into a
# tsquery.
# Candidates are the chunks holding the query's rare terms: a term is rare in at most COMMON chunks or
# COMMON_SHARE of them, and rare terms are taken from the rarest up while their document frequencies add up to at
# most CANDIDATE_BUDGET (the rarest always). A term in most chunks does not make nearly every chunk a candidate, and
# a search reads what the budget allows however large the owner's store. A chunk holding none of the rare terms is
# then not found by this list (its vector can still find it); the others would barely have moved its score. Where
# even the rarest term is in more chunks than the budget (a query of only common words), the candidates are chunks
# holding every term, the first CANDIDATE_BUDGET of them: such words say little about which chunk is meant, and at
# 100k chunks reading them all took 300-700 ms. Against counting per query, at 1k chunks per owner p50/p95 went
# from 3.4/7.1 to 2.1/5.3 ms with the same top 10; at 100k from 146/213 to 9.1/19.8 ms, 97% of the top 10 the same.
_BM25 = """
WITH q AS (
    SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', :query)) WHERE strpos(lexeme, '\\') = 0
), stats AS (
    SELECT s.n, greatest(s.total_len::float8 / s.n, 1) AS avglen FROM lexical_stats s
    WHERE s.tbl = :table AND s.owner_id = :owner AND s.n > 0
), terms AS (
    SELECT q.lexeme, t.df, ln(1 + (s.n - t.df + 0.5) / (t.df + 0.5)) AS idf,
           sum(t.df) OVER (ORDER BY t.df, q.lexeme) AS reach, t.df <= greatest(:common, s.n * :common_share) AS rare
    FROM q CROSS JOIN stats s CROSS JOIN LATERAL (  -- one lookup by the whole key per lexeme
        SELECT t.df FROM lexical_terms t WHERE t.tbl = :table AND t.owner_id = :owner AND t.lexeme = q.lexeme
        LIMIT 1) t
    WHERE t.df > 0
), candidates AS MATERIALIZED (  -- once, whatever the join order below
    SELECT c.id, c.tsv, c.token_count, coalesce(c.tsv @@ plainto_tsquery('english', :exact), false) AS exact
    FROM {table} c
    WHERE {scope} AND c.tsv @@ (
        SELECT CASE WHEN min(df) <= :budget  -- the rarest term (reach = df), and the rare ones within the budget
                    THEN string_agg(quote_literal(lexeme), ' | ')
                         FILTER (WHERE reach = df OR (rare AND reach <= :budget))
                    ELSE string_agg(quote_literal(lexeme), ' & ') END::tsquery FROM terms)
    LIMIT :budget
), ranked AS (
    SELECT c.id, sum(t.idf * (cardinality(u.positions) * (:k1 + 1))
                     / (cardinality(u.positions) + :k1 * (1 - :b + :b * c.token_count / s.avglen))) AS score,
           count(*) = (SELECT count(*) FROM q) AS all_terms, c.exact
    FROM candidates c CROSS JOIN stats s
    CROSS JOIN LATERAL unnest(ts_filter(setweight(c.tsv, 'A', (SELECT array_agg(lexeme) FROM terms)), '{{a}}'))
        AS u(lexeme, positions, weights)
    JOIN terms t ON t.lexeme = u.lexeme
    GROUP BY c.id, c.exact
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
                              "exact": exact_terms(query), "budget": CANDIDATE_BUDGET, "table": table,
                              "common": COMMON, "common_share": COMMON_SHARE}
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
