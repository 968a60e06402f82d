"""Search with an optional graph expansion.

Plain search ranks the owner's chunks by cosine similarity to the query. The graph expansion adds what the
knowledge graph knows: entities named in the query (found by spaCy on the query, and by matching the query's
word n-grams against the owner's entity names) pull in the chunks that mention them and, with a smaller
weight, the chunks that mention their most closely related entities. Every candidate is scored the same way
(its own vector against the query), and a graph link adds a small boost, so an expansion can lift a
relevant chunk that the vector search ranked just too low, but cannot push an unrelated chunk to the top.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ingestflow.errors import IngestError
from ingestflow.graph import open_graph_store
from ingestflow.graph.base import EntitySummary, GraphStore
from ingestflow.models import spacy_pipeline
from ingestflow.search import ChunkHit, SearchFilters, attach_entities, embed_query, fetch_chunks, query_chunks, scope
from ingestflow.settings import Settings

log = logging.getLogger(__name__)

Expand = Literal["none", "graph"]

SEED_BOOST = 0.05  # a chunk mentions an entity named in the query
RELATED_BOOST = 0.02  # ... or one of that entity's closest related entities
MAX_SEEDS = 5
RELATED_PER_SEED = 2
MENTIONS_PER_SEED = 60
MENTIONS_PER_RELATED = 20
# Entity names are matched in Python against one list per request (one graph query instead of one per n-gram).
ENTITY_SCAN_LIMIT = 20_000
MAX_NGRAM = 6
# Labels spaCy may find in a query that name something the graph can hold (as tasks/entities.py keeps them).
QUERY_LABELS = {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "DATE",
                "MONEY", "LANGUAGE"}
# Dates and amounts match too easily as bare words ("today", "one year"): only when they carry a digit.
NUMERIC_LABELS = {"DATE", "MONEY", "TIME"}
_WORD = re.compile(r"\w+(?:['’./&-]\w+)*")


@dataclass(frozen=True)
class QueryEntity:
    id: str
    name: str
    label: str
    via: Literal["query", "related"]
    related_to: str | None = None  # the query entity this one is related to
    weight: int | None = None  # co-occurrence weight of that relation


@dataclass
class Link:
    """How the graph reached a chunk: the largest boost of any entity that did, and their names."""

    boost: float = 0.0
    names: list[str] = field(default_factory=list)


@dataclass
class Retrieval:
    hits: list[ChunkHit]
    entities: list[QueryEntity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _key(text: str) -> str:
    """Lowercase words without surrounding punctuation: how query n-grams and entity names are compared."""
    return " ".join(_WORD.findall(text.lower()))


def _ngrams(words: list[str], stop_words: set[str]) -> set[str]:
    grams = set()
    for n in range(1, MAX_NGRAM + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if all(w in stop_words for w in gram) or (n == 1 and len(gram[0]) < 3):
                continue
            grams.add(" ".join(gram))
    return grams


def _contains_words(outer: str, inner: str) -> bool:
    return f" {inner} " in f" {outer} "


def match_query_entities(query: str, known: Iterable[EntitySummary], nlp: Any) -> list[EntitySummary]:
    """The owner's entities the query names, most specific first.

    An entity matches when its whole name is a word n-gram of the query (case-insensitive), or when it
    shares a span with an entity spaCy finds in the query ("Sholes" finds "Christopher Latham Sholes").
    """
    doc = nlp(query)
    spans = {_key(ent.text) for ent in doc.ents if ent.label_ in QUERY_LABELS}
    spans.discard("")
    grams = _ngrams(_key(query).split(), set(nlp.Defaults.stop_words))
    found: dict[str, tuple[int, EntitySummary]] = {}
    for ent in known:
        name = _key(ent.name)
        if not name or (ent.label in NUMERIC_LABELS and not any(c.isdigit() for c in name)):
            continue
        if name in grams:
            rank = 0
        elif any(_contains_words(name, s) or _contains_words(s, name) for s in spans):
            rank = 1
        else:
            continue
        found.setdefault(ent.id, (rank, ent))
    # Exact names before partial ones, longer names before shorter, rarer before common: a rare entity
    # points at few chunks, which is what makes it worth following.
    ordered = sorted(found.values(), key=lambda r: (r[0], -len(_key(r[1].name).split()), r[1].mentions, r[1].name))
    return [ent for _, ent in ordered]


def _expansion(store: GraphStore, owner_id: str, query: str, nlp: Any) -> tuple[list[QueryEntity], dict[str, Link]]:
    """The query's entities and their closest related ones, and every chunk they reach."""
    seeds = match_query_entities(query, store.find_entities(owner_id, None, ENTITY_SCAN_LIMIT), nlp)[:MAX_SEEDS]
    entities: list[QueryEntity] = []
    reached: dict[str, Link] = {}

    def reach(chunk_ids: Iterable[str], name: str, boost: float) -> None:
        for cid in chunk_ids:
            link = reached.setdefault(cid, Link())
            link.boost = max(link.boost, boost)
            if name not in link.names:
                link.names.append(name)

    seed_ids = {s.id for s in seeds}
    for seed in seeds:
        detail = store.get_entity(owner_id, seed.id)
        if detail is None:
            continue
        entities.append(QueryEntity(seed.id, detail.name, detail.label, "query"))
        reach((m.chunk_id for m in detail.mentions[:MENTIONS_PER_SEED]), detail.name, SEED_BOOST)
        for rel in [r for r in detail.related if r.id not in seed_ids][:RELATED_PER_SEED]:
            other = store.get_entity(owner_id, rel.id)
            if other is None:
                continue
            entities.append(QueryEntity(rel.id, rel.name, rel.label, "related", detail.name, rel.weight))
            reach((m.chunk_id for m in other.mentions[:MENTIONS_PER_RELATED]), rel.name, RELATED_BOOST)
    return entities, reached


def retrieve(
    settings: Settings, owner_id: str, query: str, k: int, filters: SearchFilters | None = None,
    expand: Expand = "none",
) -> Retrieval:
    where = scope(settings, owner_id, filters or SearchFilters())
    if where.empty:
        return Retrieval(hits=[])
    vector = embed_query(settings, query)
    if expand == "none":
        return Retrieval(hits=attach_entities(settings, owner_id, query_chunks(settings, where, vector, k)))

    # A deeper vector list gives boosted chunks just below the cut a chance to rise into it.
    hits = {h.chunk_id: h for h in query_chunks(settings, where, vector, max(2 * k, 20))}
    notes: list[str] = []
    entities: list[QueryEntity] = []
    reached: dict[str, Link] = {}
    try:
        store = open_graph_store(settings, read_only=True)  # a snapshot: opened per request, closed at once
        try:
            entities, reached = _expansion(store, owner_id, query, spacy_pipeline(settings.spacy_model))
        finally:
            store.close()
    except IngestError as exc:
        # The graph is an extra: when it is busy, plain results are still the right answer.
        log.warning("graph expansion skipped: %s", exc)
        notes.append(f"graph expansion skipped: {exc.message}")
    missing = [cid for cid in reached if cid not in hits]
    for fetched in fetch_chunks(settings, where, missing, vector):
        hits[fetched.chunk_id] = fetched
    for cid, link in reached.items():
        if cid in hits:
            hits[cid].score = hits[cid].vector_score + link.boost
            hits[cid].expanded_from = link.names
    ranked = sorted(hits.values(), key=lambda h: (-h.score, h.chunk_id))[:k]
    return Retrieval(hits=attach_entities(settings, owner_id, ranked), entities=entities, notes=notes)
