"""summarise: a few central sentences of the document, each cited to its page or seconds, or an LLM's summary
of them where one is configured and its answer names nothing they do not (ingestflow/answering/summary.py). Made
from the chunks, so a redacted document's summary is made from its redacted text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingestflow.answering.summary import PROMPT_VERSION, extractive_many, with_llm
from ingestflow.atomic_files import write_atomic
from ingestflow.chunks import read_chunks
from ingestflow.models import embedding_model, embedding_model_name
from ingestflow.pipeline import SummaryResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.common import stage_task

if TYPE_CHECKING:
    import numpy as np


def summarise_documents(refs: list[DocumentRef]) -> list[SummaryResult]:
    """Each document's summary; the extractive ones of all the documents from one model call."""
    settings = get_settings()
    model = embedding_model(settings.embedding_model)

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    per_doc = [read_chunks(ref.chunks_json) for ref in refs]
    # A translated recording is summarised from its English translation (what the embedding model and the
    # summary's reader know), not from both tellings of the same words.
    told = [[c for c in chunks if c.translation] or chunks for chunks in per_doc]
    extracted_by = f"extractive ({embedding_model_name(settings.embedding_model)})"
    results = []
    for ref, chunks, summary in zip(refs, told, extractive_many(told, embed), strict=True):
        made_by = extracted_by
        if settings.llm_backend:
            summary = with_llm(summary, settings)
            if summary.model:
                made_by = f"{summary.model}, prompt {PROMPT_VERSION}"
        write_atomic(ref.summary_json, summary.model_dump_json())
        results.append(SummaryResult(mode=summary.mode, sentences=len(summary.sentences), model=made_by,
                                     note=summary.note, units=len(chunks)))
    return results


@stage_task("summarise")
def summarise(refs: list[DocumentRef]) -> list[SummaryResult]:
    """A short summary of each document, each sentence cited where the document says it."""
    return summarise_documents(refs)
