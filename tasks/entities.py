"""extract-entities: spaCy NER over every chunk; the graph stage turns them into nodes and edges."""

from __future__ import annotations

import re
from collections import Counter

from ingestflow.chunks import FoundEntity, read_chunks, write_entities
from ingestflow.jobs.progress import StageProgress
from ingestflow.models import spacy_pipeline, spacy_version
from ingestflow.pipeline import EntitiesResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from ingestflow.text import ENTITY_LABELS, markdown_to_text
from tasks.common import stage_task

_URL = re.compile(r"(?:https?://|/wiki/)\S+")


def plain_text(text: str) -> str:
    """Markdown and bare URLs out, so NER sees "Walt Disney", not "Walt Disney](/wiki/..."."""
    return _URL.sub(" ", markdown_to_text(text))


def entities_in(texts: list[str], model: str, progress: StageProgress | None = None) -> list[list[FoundEntity]]:
    nlp = spacy_pipeline(model)
    out: list[list[FoundEntity]] = []
    for doc in nlp.pipe((plain_text(t) for t in texts), batch_size=32):
        if progress:
            progress.advance(len(out))
        counts = Counter(
            (" ".join(ent.text.split()), ent.label_)
            for ent in doc.ents
            if ent.label_ in ENTITY_LABELS and len(ent.text.strip()) > 1
        )
        out.append([FoundEntity(name=n, label=lb, count=c) for (n, lb), c in sorted(counts.items())])
    return out


def extract_document_entities(refs: list[DocumentRef]) -> list[EntitiesResult]:
    """One spaCy pass over the chunks of all these documents; each document's entities beside its chunks."""
    settings = get_settings()
    per_doc = [read_chunks(ref.chunks_json) for ref in refs]
    texts = [c.text for chunks in per_doc for c in chunks]
    progress = StageProgress([r.job_id for r in refs], "Finding entities in", len(texts), "chunks")
    found = entities_in(texts, settings.spacy_model, progress)
    model = spacy_version(settings.spacy_model)
    results, offset = [], 0
    for ref, chunks in zip(refs, per_doc, strict=True):
        per_chunk = found[offset : offset + len(chunks)]
        offset += len(chunks)
        write_entities(ref.entities_json, per_chunk)
        distinct = {(e.name.lower(), e.label) for ents in per_chunk for e in ents}
        results.append(EntitiesResult(entity_count=len(distinct), model=model, units=len(chunks)))
    return results


@stage_task("extract-entities")
def extract_entities(refs: list[DocumentRef]) -> list[EntitiesResult]:
    """spaCy entities per chunk of these documents, written beside their chunks for the graph stage."""
    return extract_document_entities(refs)
