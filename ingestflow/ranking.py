"""Putting ranked lists together: reciprocal rank fusion, and an optional cross-encoder rerank.

RRF scores an item by the sum over the lists it appears in of weight / (RRF_K + rank): it needs no common
scale between a cosine and a BM25 score, and an item high in two lists beats one at the top of a single list.

The rerank reads the query and each of the top candidates together with a cross-encoder (sentence-transformers'
CrossEncoder) and orders them by its score. No PyPI package ships a cross-encoder's weights (the package lists
were searched: the rerankers there fetch theirs from a model hub at run time, which cannot work here), so it is
off unless INGESTFLOW_RERANK_MODEL names a model directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

RRF_K = 60


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
