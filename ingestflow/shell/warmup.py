"""Dask worker preload (`dask worker --preload ingestflow.shell.warmup`): the worker imports the libraries and loads the
models its stages use, in one thread, before it registers with the scheduler, so no task ever starts beside a
half-imported library.

Why: a fresh worker (first start, a nanny's restart after a crash, a memory or lifetime recycle) used to import on
first use, from whichever task threads started first. Two threads importing transformers together let docling see
it half-initialised; docling then recorded the tokenizer class as missing, and every chunk task of that process
failed ("HuggingFaceTokenizer is not fully defined", 347 such failures in one kill-matrix run, issue 21). A lock in
one module could not cover embed and transcribe importing the same libraries from their own threads. Dask runs a
preload's `dask_setup` after the worker listens and before it registers, so the scheduler sends it nothing until
this returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ingestflow.settings import Settings, get_settings

if TYPE_CHECKING:
    from distributed import Worker

# Under Dask's own logger, so the line lands in the worker's log with its format.
log = logging.getLogger("distributed.worker.warmup")


def _chunker(settings: Settings) -> None:
    from docling_core.types.doc import DoclingDocument

    from ingestflow.models import embedding_model_path
    from ingestflow.parsing import chunking

    path = embedding_model_path(settings.embedding_model)
    # An empty document goes the chunk stage's way: docling's chunker and tokenizer built, transformers imported.
    chunking.chunk(DoclingDocument(name="warm"), tokenizer_path=path, max_tokens=settings.chunk_max_tokens)
    chunking.count_tokens("warm", tokenizer_path=path)


def _embedder(settings: Settings) -> None:
    from ingestflow.models import embedding_model

    embedding_model(settings.embedding_model).encode(["warm"], normalize_embeddings=True)


def _whisper(settings: Settings) -> None:
    import av  # noqa: F401  (transcription decodes with it)
    import numpy as np

    from ingestflow.audio import whisper

    model, _label = whisper.configured_model(settings)
    # One second of silence through the VAD: loads the silero model the stage's first file would.
    segments, _info = model.transcribe(np.zeros(16_000, dtype=np.float32), vad_filter=True, word_timestamps=True)
    list(segments)


def _spacy(settings: Settings) -> None:
    from ingestflow.models import sentencizer, spacy_pipeline

    spacy_pipeline(settings.spacy_model)("Alice met Bob in Paris.")
    sentencizer()("One. Two.")


def _graph(settings: Settings) -> None:
    if settings.graph_backend == "ladybug":
        import ladybug  # noqa: F401
    else:
        import neo4j  # noqa: F401


# In the order the stages meet them; each is what that stage's first task would otherwise import or load.
STEPS: dict[str, Callable[[Settings], None]] = {
    "chunk": _chunker, "embed": _embedder, "transcribe": _whisper, "entities": _spacy, "graph": _graph,
}


def warm_up(settings: Settings | None = None) -> dict[str, float]:
    """Import and load what the stages need; seconds per step. A step that fails is logged and left for the stage
    to meet (and report against its document or retry) rather than keeping the worker from starting."""
    settings = settings or get_settings()
    seconds: dict[str, float] = {}
    for name, step in STEPS.items():
        t0 = time.perf_counter()
        try:
            step(settings)
        except Exception:
            log.exception("warm-up of %s failed; its stage will load on first use", name)
        seconds[name] = round(time.perf_counter() - t0, 2)
    return seconds


def dask_setup(worker: Worker) -> None:
    t0 = time.perf_counter()
    seconds = warm_up()
    log.info("worker %s warmed up in %.1f s: %s", worker.address, time.perf_counter() - t0, seconds)
