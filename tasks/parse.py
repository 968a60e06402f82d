"""parse: docling turns a text document into a structured DoclingDocument plus markdown."""

from __future__ import annotations

from importlib.metadata import version

from ingestflow import documents
from ingestflow.pipeline import ParseResult
from ingestflow.refs import DocumentRef, write_atomic
from ingestflow.settings import get_settings
from tasks.common import stage_task


def parse_document(ref: DocumentRef) -> ParseResult:
    settings = get_settings()
    doc = documents.convert(
        ref.source, ref.format, artifacts_path=settings.docling_artifacts_path, ocr=settings.ocr_enabled
    )
    documents.save_document(doc, ref.parsed_json)
    write_atomic(ref.content_md, documents.to_markdown(doc))
    pages = len(doc.pages) if getattr(doc, "pages", None) else None
    pipeline = "layout" if settings.docling_artifacts_path else "native"
    return ParseResult(page_count=pages, model=f"docling-{version('docling-slim')}-{pipeline}")


@stage_task("parse")
def parse(ref: DocumentRef) -> ParseResult:
    """docling: structured text and markdown with pages and headings."""
    return parse_document(ref)
