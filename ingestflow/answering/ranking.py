"""Putting ranked lists together: a convex combination of scores, reciprocal rank fusion, and an optional
cross-encoder rerank.

`combine` is how search weighs meaning against words: each chunk's cosine scaled to 0..1 over the candidates
(min-max) and its BM25 divided by the best BM25, mixed by a share. Scores, not ranks: when the embedding is sure
(a cosine of 0.56 against 0.41 for the next chunk) and BM25 barely separates two chunks (4.4 against 4.2), the
sum says so, where reciprocal rank fusion sees only "first" and "third" in each list. On the development part of
tests/qa_set.json this took hybrid from 47 to 51 of 54 first (recordings 15 to 19 of 22) and recall@5 to 54 of
54, against the rank fusion it replaced (Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval",
2023, found the same on BEIR). Its share and bonus sit mid-plateau: 0.6-0.65 with a bonus of 0.1-0.3 all gave 51.

`fuse` (RRF) scores an item by the sum over the lists it appears in of weight / (RRF_K + rank): for lists that
have no scores on a common footing (the chat's turns, which carry no vector for a turn found only by its words).

The rerank reads the query and each of the top candidates together with a cross-encoder (sentence-transformers'
CrossEncoder) and orders them by its score. No PyPI package ships a cross-encoder's weights (the package lists
were searched: the rerankers there fetch theirs from a model hub at run time, which cannot work here), so it is
off unless INGESTFLOW_RERANK_MODEL names a model directory.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

RRF_K = 60
VECTOR_SHARE = 0.6  # of a hybrid score; the rest is the scaled BM25
EXACT_BONUS = 0.2  # for holding every exact term of the query (a figure, a code, a capitalised name)


def min_max(values: Mapping[str, float]) -> dict[str, float]:
    """Scaled to 0..1 over the candidates, the best 1; all 0 when there is nothing to tell apart."""
    if not values:
        return {}
    low, high = min(values.values()), max(values.values())
    return {key: (v - low) / (high - low) if high > low else 0.0 for key, v in values.items()}


def scaled_to_best(values: Mapping[str, float]) -> dict[str, float]:
    """Each value over the largest (BM25 has a floor of 0: a chunk that matches nothing)."""
    best = max(values.values(), default=0.0)
    return {key: v / best if best > 0 else 0.0 for key, v in values.items()}


def combine(cosines: Mapping[str, float], words: Mapping[str, float], exact: Collection[str],
            vector_share: float = VECTOR_SHARE) -> dict[str, float]:
    """Ids to their hybrid score: vector_share of the min-max scaled cosine, the rest of `words` (BM25 already
    scaled to 0..1, 0 where a chunk did not match), and EXACT_BONUS for an id in `exact`."""
    meaning = min_max(cosines)
    return {key: vector_share * meaning.get(key, 0.0) + (1 - vector_share) * words.get(key, 0.0)
            + (EXACT_BONUS if key in exact else 0.0) for key in cosines.keys() | words.keys()}


def fuse(rankings: Sequence[tuple[Sequence[str], float]], k: int = RRF_K) -> dict[str, float]:
    """Ids to their fused score, from (ids best first, weight) per list."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, item in enumerate(ids, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


class Reranker(Protocol):
    def predict(self, pairs: list[tuple[str, str]], **kwargs: Any) -> Any: ...


@lru_cache(maxsize=2)
def cross_encoder(path: str) -> Reranker:
    from sentence_transformers import CrossEncoder

    model: Reranker = CrossEncoder(path, device="cpu", local_files_only=True)
    return model


def rerank_scores(model: Reranker, query: str, texts: Sequence[str]) -> list[float]:
    if not texts:
        return []
    return [float(s) for s in model.predict([(query, t) for t in texts], show_progress_bar=False)]


def reranker_for(model_path: Path | None) -> Reranker | None:
    return cross_encoder(str(model_path)) if model_path is not None else None
