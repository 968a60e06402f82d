"""One file to a DoclingDocument, offline.

Docling's default PDF pipeline needs a layout model that no installed package ships, so PDFs go through docling's
model-free native pipeline (rebuilt into paragraphs and OCR'd where needed by native_pdf) unless the caller points
`artifacts_path` at downloaded layout models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestflow.detect import FORMATS as DETECTED
from ingestflow.errors import CorruptInput, PermanentError, UnsupportedFormat
from ingestflow.parsing import native_pdf, sheets
from ingestflow.parsing.ocr import rapidocr_model_paths

if TYPE_CHECKING:
    from docling.document_converter import DocumentConverter
    from docling_core.types.doc import DoclingDocument

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("pdf", "docx", "pptx", "xlsx", "html", "md", "csv", "asciidoc")  # images arrive as PDFs
# The name docling picks a backend by: each format's first extension in ingestflow.detect's table.
_SUFFIXES = {fmt: "." + DETECTED[fmt].extensions[0] for fmt in FORMATS}
_LABELS = {"pdf": "PDF", "docx": "DOCX", "pptx": "PPTX", "xlsx": "XLSX", "html": "HTML", "md": "Markdown", "csv": "CSV",
           "asciidoc": "AsciiDoc"}


@dataclass
class Conversion:
    """A converted document plus what the caller should know about how complete it is."""

    document: DoclingDocument
    # Human-readable remarks: partial conversion, pages left unread or failed OCR. Empty when all went well.
    notes: list[str] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return bool(self.notes)


def convert(path: Path, fmt: str, *, artifacts_path: Path | None = None, ocr: bool = True) -> DoclingDocument:
    """Convert one file. Raises UnsupportedFormat or CorruptInput; a partial result is kept and logged."""
    return convert_detailed(path, fmt, artifacts_path=artifacts_path, ocr=ocr).document


def convert_detailed(path: Path, fmt: str, *, artifacts_path: Path | None = None, ocr: bool = True) -> Conversion:
    """Like `convert`, but also returns the notes on partial conversion and the pages that were OCR'd."""
    from docling.datamodel.base_models import ConversionStatus

    if fmt not in FORMATS:
        raise UnsupportedFormat(f"unsupported document format {fmt!r}; supported: {', '.join(FORMATS)}")
    label = _LABELS[fmt]
    path = Path(path)
    if not path.is_file():
        raise CorruptInput(f"{label} could not be read: no such file {path}")
    if fmt == "pdf":
        _check_pdf_readable(path)

    # Only the layout pipeline has OCR built in; the native path OCRs below, so `ocr` must not split the cache.
    pipeline_ocr = ocr if fmt == "pdf" and artifacts_path is not None else False
    converter = _converter(fmt, str(artifacts_path) if artifacts_path else None, pipeline_ocr)
    try:
        result = converter.convert(_source(path, fmt), raises_on_error=False)
    except Exception as exc:  # backends raise whatever their parser raises on malformed input
        reason = reason_of(exc)
        if "format not allowed" in reason:  # docling sniffed the content as another format
            reason = f"the content is not {label}"
        raise CorruptInput(f"{label} could not be read: {reason}") from exc

    errors = [err.error_message for err in result.errors]
    if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
        reason = "; ".join(errors) or f"conversion ended with status {result.status.value}"
        raise CorruptInput(f"{label} could not be read: {reason}")

    notes: list[str] = []
    if result.status == ConversionStatus.PARTIAL_SUCCESS:
        notes.append("converted only partly: " + ("; ".join(errors) or "no details given"))

    outcome = Conversion(document=result.document, notes=notes)
    if fmt == "pdf" and artifacts_path is None:
        doc, ocr_pages = native_pdf.rebuild(result.document, path, ocr=ocr, notes=notes)
        outcome = Conversion(document=doc, notes=notes, ocr_pages=ocr_pages)
    elif fmt == "xlsx":
        outcome.document = sheets.name_sheets(outcome.document)
    for note in outcome.notes:
        log.warning("%s: %s", path.name, note)
    return outcome


def to_markdown(doc: DoclingDocument) -> str:
    return doc.export_to_markdown()


def _source(path: Path, fmt: str) -> Any:
    """Docling picks the backend from the file name, and uploads are stored under arbitrary names: when the
    suffix disagrees with the declared format, hand docling a stream named so that it agrees."""
    if path.suffix.lower() == _SUFFIXES[fmt] or (fmt == "html" and path.suffix.lower() == ".htm"):
        return path
    from io import BytesIO

    from docling.datamodel.base_models import DocumentStream

    return DocumentStream(name=path.stem + _SUFFIXES[fmt], stream=BytesIO(path.read_bytes()))


def reason_of(exc: BaseException) -> str:
    """The exception's message, cut to a length a user can read in a job view."""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "..."


def _check_pdf_readable(path: Path) -> None:
    """docling-parse reports a broken PDF as "could not load document <hash>"; PDFium says why (damaged file,
    password), which is what a user needs to hear."""
    import pypdfium2 as pdfium
    from docling.utils.locks import pypdfium2_lock

    try:
        with pypdfium2_lock:  # PDFium is not thread-safe; docling serialises on this same lock
            pdf = pdfium.PdfDocument(path)
            try:
                pages = len(pdf)
            finally:
                pdf.close()
    except pdfium.PdfiumError as exc:
        raise CorruptInput(f"PDF could not be read: {reason_of(exc)}") from exc
    if pages == 0:
        raise CorruptInput("PDF could not be read: it has no pages")


@lru_cache(maxsize=16)
def _converter(fmt: str, artifacts_path: str | None, ocr: bool) -> DocumentConverter:
    from docling.datamodel.base_models import InputFormat
    from docling.document_converter import (
        AsciiDocFormatOption,
        CsvFormatOption,
        DocumentConverter,
        ExcelFormatOption,
        HTMLFormatOption,
        MarkdownFormatOption,
        PowerpointFormatOption,
        WordFormatOption,
    )

    input_format = {
        "pdf": InputFormat.PDF,
        "docx": InputFormat.DOCX,
        "pptx": InputFormat.PPTX,
        "xlsx": InputFormat.XLSX,
        "html": InputFormat.HTML,
        "md": InputFormat.MD,
        "csv": InputFormat.CSV,
        "asciidoc": InputFormat.ASCIIDOC,
    }[fmt]
    if fmt == "pdf":
        option: Any = _standard_pdf_option(Path(artifacts_path), ocr) if artifacts_path else _native_pdf_option()
    else:
        option = {
            "docx": WordFormatOption,
            "pptx": PowerpointFormatOption,
            "xlsx": ExcelFormatOption,
            "html": HTMLFormatOption,
            "md": MarkdownFormatOption,
            "csv": CsvFormatOption,
            "asciidoc": AsciiDocFormatOption,
        }[fmt]()
    converter = DocumentConverter(allowed_formats=[input_format], format_options={input_format: option})
    try:
        # Loading models now, not inside the first convert(), keeps a missing-model error from being
        # reported as a corrupt document.
        converter.initialize_pipeline(input_format)
    except Exception as exc:
        raise PermanentError(f"{_LABELS[fmt]} pipeline could not start: {reason_of(exc)}") from exc
    return converter


def _native_pdf_option() -> Any:
    from docling.datamodel.pipeline_options import NativePdfPipelineOptions
    from docling.document_converter import NativePdfFormatOption

    # No page or picture images: OCR renders its own pages, and embedded bitmaps would bloat the saved JSON.
    options = NativePdfPipelineOptions(generate_page_images=False, generate_picture_images=False)
    return NativePdfFormatOption(pipeline_options=options)


def _standard_pdf_option(artifacts_path: Path, ocr: bool) -> Any:
    from docling.datamodel.pipeline_options import PdfPipelineOptions, RapidOcrOptions
    from docling.document_converter import PdfFormatOption
    from docling.models.stages.table_structure.table_structure_model import TableStructureModel

    det, cls, rec = (str(p) for p in rapidocr_model_paths())
    options = PdfPipelineOptions(
        artifacts_path=artifacts_path,
        do_ocr=ocr,
        # Pinned model files: otherwise docling looks for RapidOCR weights under artifacts_path/RapidOcr.
        ocr_options=RapidOcrOptions(det_model_path=det, cls_model_path=cls, rec_model_path=rec),
        # A layout-only download has no table model; without this check the pipeline would fail to start.
        do_table_structure=(artifacts_path / TableStructureModel._model_repo_folder).is_dir(),
    )
    return PdfFormatOption(pipeline_options=options)
