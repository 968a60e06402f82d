"""parse: docling turns a text document into a structured DoclingDocument plus markdown.

The conversion runs in a warm child process under a hard wall-clock limit, after structural checks for
pathological input (ingestflow.parsing.worker, ingestflow.parsing.limits); the child writes both files."""

from __future__ import annotations

from importlib.metadata import version

from ingestflow.parsing import worker
from ingestflow.parsing.limits import Limits
from ingestflow.pipeline import ParseResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.common import stage_task


def parse_document(ref: DocumentRef) -> ParseResult:
    settings = get_settings()
    job = worker.Job(
        source=ref.source,
        fmt=ref.format,
        parsed_json=ref.parsed_json,
        content_md=ref.content_md,
        artifacts_path=settings.docling_artifacts_path,
        ocr=settings.ocr_enabled,
        limits=Limits.from_settings(settings),
    )
    parsed = worker.run(job, timeout_s=settings.parse_timeout_s, recycle=worker.Recycle.from_settings(settings))
    pipeline = "layout" if settings.docling_artifacts_path else "native"
    return ParseResult(page_count=parsed.pages, model=f"docling-{version('docling-slim')}-{pipeline}",
                       note="; ".join(parsed.notes) or None)


@stage_task("parse")
def parse(ref: DocumentRef) -> ParseResult:
    """docling: structured text and markdown with pages and headings."""
    return parse_document(ref)
