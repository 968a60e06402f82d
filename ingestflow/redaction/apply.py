"""Redact a parsed document or a transcript in place of the unredacted one, keeping its structure: pages and
headings stay where they were, a transcript's words keep their timings (a redacted run of words becomes one
placeholder word spanning their time), so citations still point at the right page or second."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingestflow.audio.transcript import Segment, Transcript, Word, join_words
from ingestflow.redaction.analyzer import Span, find, redact
from ingestflow.redaction.columns import column_type, holds

if TYPE_CHECKING:
    from docling_core.types.doc import DoclingDocument


@dataclass(frozen=True)
class Redacted:
    spans: int  # how many spans of personal data were replaced
    by_type: dict[str, int]


def _count(spans: list[list[Span]]) -> Redacted:
    by_type: dict[str, int] = {}
    for found in spans:
        for span in found:
            by_type[span.entity] = by_type.get(span.entity, 0) + 1
    return Redacted(sum(by_type.values()), dict(sorted(by_type.items())))


def redact_document(doc: DoclingDocument) -> Redacted:
    """Every text of the document (paragraphs, headings, list items, captions, table cells), redacted together
    so that a name found in one is found in all."""
    holders: list[Any] = [item for item in doc.texts if item.text]
    known: list[list[Span]] = [[] for _ in holders]
    for table in doc.tables:
        for cell, kind in _cells_by_column(table):
            holders.append(cell)
            known.append([Span(0, len(cell.text), kind)] if kind and holds(kind, cell.text) else [])
    spans = find([h.text for h in holders], known)
    for holder, found in zip(holders, spans, strict=True):
        if found:
            holder.text = redact(holder.text, found)
            if getattr(holder, "orig", None) is not None:
                holder.orig = holder.text  # docling keeps the text as it was read beside the cleaned one
    for table in doc.tables:  # the grid holds its own copies of the cells
        cells = {(c.start_row_offset_idx, c.start_col_offset_idx): c.text for c in table.data.table_cells}
        for row in table.data.grid:
            for cell in row:
                cell.text = cells.get((cell.start_row_offset_idx, cell.start_col_offset_idx), cell.text)
    return _count(spans)


def _cells_by_column(table: Any) -> list[tuple[Any, str | None]]:
    """A table's cells with text, each with the type of personal data its column's header says it holds (a
    contact export's "Surname" or "DOB" column): such a cell has no words around it to cue a recognizer."""
    cells = [c for c in table.data.table_cells if c.text]
    headers = [c for c in cells if c.column_header] or [c for c in cells if c.start_row_offset_idx == 0]
    kinds = {c.start_col_offset_idx: column_type(c.text) for c in headers}
    header_ids = {id(c) for c in headers}
    return [(c, None if id(c) in header_ids else kinds.get(c.start_col_offset_idx)) for c in cells]


def _pieces(seg: Segment) -> list[str]:
    """What the segment says, as the words carry it (each with its leading space), or its text alone."""
    return [w["word"] for w in seg.get("words") or []] or [seg.get("text", "")]


def redact_transcript(transcript: Transcript, llm_text: str | None = None) -> tuple[Redacted, str | None]:
    """The whole transcript is read as one text, so a number read out across two segments is one number; each
    word overlapping a span gives way to the placeholder (the first of them takes it, with their start and end)."""
    offsets: list[tuple[int, int, int, int]] = []  # segment, piece, start, end in the joined text
    parts: list[str] = []
    cursor = 0
    for s, seg in enumerate(transcript.segments):
        for p, piece in enumerate(_pieces(seg)):
            offsets.append((s, p, cursor, cursor + len(piece)))
            parts.append(piece)
            cursor += len(piece)
        parts.append(" ")
        cursor += 1
    texts = ["".join(parts)] + ([llm_text] if llm_text else [])
    spans = find(texts)
    for seg_index, seg in enumerate(transcript.segments):
        pieces = [(p, a, b) for (s, p, a, b) in offsets if s == seg_index]
        _redact_segment(seg, pieces, texts[0], spans[0])
    return _count(spans), (redact(llm_text, spans[1]) if llm_text else None)


def _redact_segment(seg: Segment, pieces: list[tuple[int, int, int]], text: str, spans: list[Span]) -> None:
    words = seg.get("words") or []
    out_words: list[Word] = []
    out_text: list[str] = []
    taken: set[int] = set()  # spans already placed in this segment
    for p, a, b in pieces:
        hit = [i for i, sp in enumerate(spans) if sp.start < b and sp.end > a]
        if not hit:
            out_text.append(text[a:b])
            if words:
                out_words.append(words[p])
            continue
        piece = ""
        first, last = spans[hit[0]], spans[hit[-1]]
        if first.start > a:
            piece += text[a : first.start]
        for i in hit:
            if i not in taken:
                piece += (" " if not piece and text[a:b].startswith(" ") else "") + spans[i].placeholder
                taken.add(i)
        if last.end < b:
            piece += text[last.end : b]
        if piece:
            out_text.append(piece)
            if words:
                out_words.append(Word(start=words[p]["start"], end=words[p]["end"], word=piece,
                                      probability=words[p]["probability"]))
        elif words and out_words and out_words[-1]["word"].strip().startswith("<"):
            out_words[-1]["end"] = words[p]["end"]  # the placeholder spans the words it stands for
    if words:
        seg["words"] = out_words
        seg["text"] = join_words(out_words)
    else:
        seg["text"] = "".join(out_text).strip()
