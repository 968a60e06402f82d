"""Chunks of a DoclingDocument by docling's HybridChunker, counted with the embedding model's tokenizer."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ingestflow.chunks import Chunk
from ingestflow.models import embedding_model_path

if TYPE_CHECKING:
    from docling_core.transforms.chunker.hybrid_chunker import HybridChunker
    from docling_core.types.doc import DoclingDocument


def chunk(doc: DoclingDocument, *, tokenizer_path: Path | None = None, max_tokens: int = 256) -> list[Chunk]:
    """Cut a document into chunks whose embed_text, encoded with the tokenizer's special tokens, is at most
    max_tokens long, so an encoder with that sequence length truncates nothing."""
    from docling_core.transforms.chunker.hierarchical_chunker import DocChunk

    chunker = _chunker(str(tokenizer_path or embedding_model_path(None)), max_tokens)
    records: list[Chunk] = []
    for base_chunk in chunker.chunk(dl_doc=doc):
        doc_chunk = cast(DocChunk, base_chunk)  # HybridChunker yields DocChunks, typed as their base class
        if not doc_chunk.text.strip():
            continue
        pages = [prov.page_no for item in doc_chunk.meta.doc_items for prov in item.prov]
        records.append(
            Chunk(
                index=len(records),
                text=doc_chunk.text,
                embed_text=chunker.contextualize(chunk=doc_chunk),
                page_start=min(pages) if pages else None,
                page_end=max(pages) if pages else None,
                headings=list(doc_chunk.meta.headings or []),
            )
        )
    return records


@lru_cache(maxsize=4)
def _hf_tokenizer(tokenizer_path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    # Texts are counted here far beyond the encoder's 512; silence the "sequence too long" warning.
    tokenizer.model_max_length = 1_000_000
    return tokenizer


# Two threads importing transformers and docling's tokenizer module together let one see transformers
# half-initialised; docling then records it as missing and every chunk in that process fails ("HuggingFaceTokenizer
# is not fully defined"). A Dask worker imports them before its first task (ingestflow/shell/warmup.py, which also
# covers embed and transcribe); this lock keeps a process without that preload (tests, a worker started by hand)
# safe here.
_BUILD_LOCK = threading.RLock()


def _chunker(tokenizer_path: str, max_tokens: int) -> HybridChunker:
    with _BUILD_LOCK:
        return _build_chunker(tokenizer_path, max_tokens)


@lru_cache(maxsize=4)
def _build_chunker(tokenizer_path: str, max_tokens: int) -> HybridChunker:
    from docling_core.transforms.chunker.hybrid_chunker import HybridChunker
    from docling_core.transforms.chunker.tokenizer.huggingface import HuggingFaceTokenizer

    hf = _hf_tokenizer(tokenizer_path)
    # Docling counts tokens without [CLS]/[SEP]; the encoder's limit includes them.
    budget = max_tokens - hf.num_special_tokens_to_add()
    if budget < 16:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text")
    return HybridChunker(
        tokenizer=HuggingFaceTokenizer(tokenizer=hf, max_tokens=budget),
        merge_peers=True,
        # Chunk tables are serialised as one-line triplets ("R1, Class1 = True. ..."); "repeating the header"
        # of such a line only prefixes every piece with a stray "| - |".
        repeat_table_header=False,
    )


def count_tokens(text: str, *, tokenizer_path: Path | None = None) -> int:
    """Length of `text` as the encoder sees it, special tokens included."""
    with _BUILD_LOCK:
        hf = _hf_tokenizer(str(tokenizer_path or embedding_model_path(None)))
    return len(hf(text)["input_ids"])
