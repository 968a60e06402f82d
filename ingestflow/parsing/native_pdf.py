"""docling's native PDF pipeline emits one text item per printed line and never runs OCR: regroup the lines into
paragraphs, guess headings from line height, and OCR the pages that carry no text layer."""

from __future__ import annotations

import logging
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestflow.parsing.ocr import ocr_page

if TYPE_CHECKING:
    from docling_core.types.doc import BoundingBox, DoclingDocument

log = logging.getLogger(__name__)

# A scanned page often still carries a stamped page number or a short header in its text layer; a handful of
# characters is not a text layer worth trusting, so such pages are OCR'd as well.
_MIN_TEXT_CHARS = 10
# Gap between two lines, in line heights, above which they belong to different paragraphs. Body text in
# typical PDFs sits at ~0.4 (leading), paragraph and section breaks at >= 1.5.
_PARAGRAPH_GAP = 0.8
# A one-line paragraph whose line is this much taller than the body text is taken for a heading.
_HEADING_HEIGHT_RATIO = 1.08
_HEADING_MAX_WORDS = 16
# Bullets and enumerations start a new paragraph even when the line spacing says "same paragraph".
_LIST_MARKER = re.compile(r"^(?:[^\w\s(\"'“‘]|\d{1,3}[.)]|[a-zA-Z][.)])\s")


@dataclass
class _Line:
    text: str
    bbox: BoundingBox  # bottom-left origin, PDF points
    from_ocr: bool = False
    row: bool = False  # the cells of one table row, joined: a paragraph of its own, never a heading

    @property
    def height(self) -> float:
        return self.bbox.t - self.bbox.b


@dataclass
class _Picture:
    bbox: BoundingBox


def rebuild(native: DoclingDocument, path: Path, *, ocr: bool, notes: list[str]) -> tuple[DoclingDocument, list[int]]:
    """The native pipeline's line-per-item document rebuilt as paragraphs and headings, the pages that have no
    text layer OCR'd, and those pages' numbers; what the caller should know is appended to `notes`.
    Rebuilding is simpler than editing in place: the native document is flat (only text lines and pictures
    under the body), so nothing structural is lost."""
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
                lines = ocr_page(path, page_no, native.pages[page_no].size)
            except Exception as exc:  # one unreadable page must not cost the whole document
                log.warning("%s: OCR of page %d failed: %s", path.name, page_no, exc, exc_info=True)
                failed.append(page_no)
                continue
            # The OCR text replaces the page's own items: the scan is the picture, and any stray text-layer
            # characters are read again from the rendered page.
            elements[page_no] = [_Line(text, bbox, from_ocr=True) for text, bbox in lines]
            ocr_pages.append(page_no)
        if failed:
            notes.append(f"OCR failed on pages {_page_list(failed)}; their text is missing")

    doc = _assemble(native, elements)
    if not doc.texts:
        notes.append("no text found on any page")
    return doc, ocr_pages


def _assemble(native: DoclingDocument, elements: dict[int, list[_Line | _Picture]]) -> DoclingDocument:
    from docling_core.types.doc import DocItemLabel, DoclingDocument, ProvenanceItem

    doc = DoclingDocument(name=native.name, origin=native.origin)
    for page_no in sorted(native.pages):
        page = native.pages[page_no]
        doc.add_page(page_no=page_no, size=page.size)

    body_height = _body_line_height(elements)
    for page_no in sorted(elements):
        for element in _paragraphs(_rows(elements[page_no])):
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


# Lines beside each other at one height are the cells of a table row (the native pipeline emits a cell, or a few
# neighbouring cells, per item). Kept as one line, "Hillside | 87 | 39 | 840 | -21%", a row reads as a row and
# stays whole; as separate paragraphs, each cell was a line of its own, and a header cell taller than the body
# text ("Children signed up / Finished challenge") was taken for a heading that cut the table from its header.
_ROW_OVERLAP = 0.3  # of the shorter line's height, shared vertically


def _rows(elements: list[_Line | _Picture]) -> list[_Line | _Picture]:
    """Consecutive lines that share a height, side by side, merged into one row line (cells left to right;
    cells stacked in one column, as a header wrapped over two lines, joined top to bottom)."""
    out: list[_Line | _Picture] = []
    band: list[_Line] = []

    def close() -> None:
        if len(band) == 1:
            out.append(band[0])
        elif band:
            out.append(_row_line(band))
        band.clear()

    for element in elements:
        if isinstance(element, _Line) and not element.from_ocr and band and _beside(band, element):
            band.append(element)
            continue
        close()
        if isinstance(element, _Line) and not element.from_ocr:
            band.append(element)
        else:
            out.append(element)
    close()
    return out


def _beside(band: list[_Line], line: _Line) -> bool:
    top, bottom = max(b.bbox.t for b in band), min(b.bbox.b for b in band)
    shared = min(top, line.bbox.t) - max(bottom, line.bbox.b)
    apart = all(line.bbox.l >= b.bbox.r or line.bbox.r <= b.bbox.l for b in band)
    return apart and shared > _ROW_OVERLAP * min(line.height, min(b.height for b in band))


def _row_line(band: list[_Line]) -> _Line:
    columns: list[list[_Line]] = []
    for line in sorted(band, key=lambda ln: (ln.bbox.l, -ln.bbox.t)):
        if columns and line.bbox.l < columns[-1][-1].bbox.r and line.bbox.r > columns[-1][-1].bbox.l:
            columns[-1].append(line)  # under the previous cell: the same column, wrapped
        else:
            columns.append([line])
    text = " | ".join(" ".join(ln.text.strip() for ln in col) for col in columns)
    return _Line(text, _union(ln.bbox for ln in band), row=True)


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
    if prev.row or line.row:
        return False
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
    if len(lines) != 1 or body_height is None or lines[0].from_ocr or lines[0].row:  # OCR box heights are noisy
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
