"""Turn one document's ChunkFacts into the flat parameter rows both backends UNWIND.

Aggregating here (not in Cypher) keeps the two backends' semantics identical and lets each
write be a handful of batched statements instead of one statement per chunk or mention.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from ingestflow.stores.graph.base import ChunkFacts, entity_id, normalise_name

Row = dict[str, Any]


@dataclass(frozen=True)
class DocumentRows:
    chunks: list[Row]  # id, idx, text, page, start_s, end_s
    entities: list[Row]  # id, name, label
    mentions: list[Row]  # chunk, entity, count
    related: list[Row]  # a, b (a < b), weight


def _opt_float(value: float | None) -> float | None:
    # An int timestamp (0) next to floats would give the UNWIND list mixed column types.
    return None if value is None else float(value)


def document_rows(owner: str, chunks: Sequence[ChunkFacts]) -> DocumentRows:
    chunk_rows: list[Row] = []
    entities: dict[str, Row] = {}
    mention_counts: Counter[tuple[str, str]] = Counter()
    pair_weights: Counter[tuple[str, str]] = Counter()
    seen_chunks: set[str] = set()

    for chunk in chunks:
        if chunk.chunk_id in seen_chunks:
            # Two chunks with one id would silently merge into one node and skew every weight.
            raise ValueError(f"duplicate chunk id {chunk.chunk_id!r}")
        seen_chunks.add(chunk.chunk_id)
        chunk_rows.append(
            {
                "id": chunk.chunk_id,
                "idx": int(chunk.index),
                "text": chunk.text,
                "page": None if chunk.page is None else int(chunk.page),
                "start_s": _opt_float(chunk.start_s),
                "end_s": _opt_float(chunk.end_s),
            }
        )
        in_chunk: set[str] = set()
        for mention in chunk.entities:
            if not normalise_name(mention.name) or mention.count < 1:
                continue  # blank NER spans carry no fact worth a node
            eid = entity_id(owner, mention.label, mention.name)
            # First surface form wins, so the displayed name does not flip between writes.
            entities.setdefault(eid, {"id": eid, "name": " ".join(mention.name.split()), "label": mention.label})
            mention_counts[(chunk.chunk_id, eid)] += mention.count
            in_chunk.add(eid)
        # Weight counts chunks naming both, so a pair is counted once per chunk whatever the mention counts.
        for a, b in combinations(sorted(in_chunk), 2):
            pair_weights[(a, b)] += 1

    return DocumentRows(
        chunks=chunk_rows,
        entities=list(entities.values()),
        mentions=[{"chunk": c, "entity": e, "count": n} for (c, e), n in mention_counts.items()],
        related=[{"a": a, "b": b, "weight": w} for (a, b), w in pair_weights.items()],
    )
