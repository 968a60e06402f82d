"""Cheap structural checks that refuse a pathological document before docling spends minutes on it.

Each check reads only as much of the file as it needs and stops at the first limit crossed: a 5 MB page of
50,000 nested <div>s is refused after its first few hundred tags, where docling's recursive walk used to hold
a worker for minutes before failing on Python's recursion limit. They run inside the parse child process
(ingestflow.parsing.worker), under the same wall-clock limit as the conversion, so the worker process itself
never touches hostile bytes. The error says which limit was hit and which setting raises it.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from ingestflow.errors import CorruptInput, LimitExceeded

if TYPE_CHECKING:
    from ingestflow.settings import Settings

# Elements that never have content: BeautifulSoup (docling's HTML parser, through html.parser) closes them at
# once, so they add no depth. Its own list (bs4.builder.HTMLTreeBuilder.DEFAULT_EMPTY_ELEMENT_TAGS).
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem", "meta", "param",
    "source", "track", "wbr", "basefont", "bgsound", "command", "frame", "image", "isindex", "nextid", "spacer",
})  # fmt: skip
# A real element name. In Markdown, <https://...> and <a@b.c> are autolinks, not tags.
_ELEMENT_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")
# Block containers that open a nesting level at the start of a Markdown line: a quote or a list item.
_MD_CONTAINER = re.compile(r"[ \t]*(?:>|[-+*][ \t]|\d{1,9}[.)][ \t])")
_READ_BYTES = 1 << 20


def setting_name(field: str) -> str:
    return f"INGESTFLOW_{field.upper()}"


@dataclass(frozen=True)
class Limits:
    """The structural limits, as plain values: they travel to the parse child with each job."""

    max_depth: int
    max_quote_depth: int
    max_pages: int
    max_unzipped_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.parse_max_depth,
            settings.parse_max_quote_depth,
            settings.parse_max_pages,
            settings.parse_max_unzipped_bytes,
        )


def check(path: Path, fmt: str, limits: Limits) -> None:
    """Raise LimitExceeded when the document is beyond a limit; formats without a check pass."""
    if fmt == "html":
        _check_depth(_text_chunks(path), limits.max_depth, "HTML", markdown=False)
    elif fmt == "md":
        _check_markdown(path, limits.max_depth, limits.max_quote_depth)
    elif fmt == "pdf":
        _check_pages(path, limits.max_pages)
    elif fmt in ("docx", "pptx", "xlsx"):
        _check_unzipped(path, limits.max_unzipped_bytes, fmt.upper())


# ------------------------------------------------------------------------------------------------ nesting


class _TooDeep(Exception):
    pass


class _DepthCounter(HTMLParser):
    """Open elements as BeautifulSoup's html.parser builder nests them: it closes no optional end tag (so
    `<p>a<p>b` is two levels), an end tag closes its innermost open namesake and all inside it, and a stray
    end tag is ignored. Docling recurses once (or more) per level of that tree."""

    def __init__(self, limit: int, *, markdown: bool) -> None:
        super().__init__(convert_charrefs=False)  # text is not looked at; unescaping it is wasted work
        self.limit = limit
        self.markdown = markdown
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or (self.markdown and not _ELEMENT_NAME.match(tag)):
            return
        self.open.append(tag)
        if len(self.open) > self.limit:
            raise _TooDeep

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <div/>: opened and closed at once

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):  # at most `limit` entries: the walk stays cheap
            if self.open[i] == tag:
                del self.open[i:]
                return


def _text_chunks(path: Path) -> Iterator[str]:
    """The file as text, a megabyte at a time. Tags are ASCII, so a wrong guess at the encoding of the text
    between them changes nothing; undecodable bytes become U+FFFD."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with path.open("rb") as fh:
        while data := fh.read(_READ_BYTES):
            yield decoder.decode(data)


def _check_depth(chunks: Iterable[str], limit: int, label: str, *, markdown: bool) -> None:
    counter = _DepthCounter(limit, markdown=markdown)
    try:
        for text in chunks:
            counter.feed(text)
        counter.close()
    except _TooDeep:
        raise LimitExceeded(
            f"{label} is nested more than {limit} elements deep (limit {setting_name('parse_max_depth')}={limit})"
        ) from None


def _check_markdown(path: Path, limit: int, quote_limit: int) -> None:
    """Quotes and list items nest by line prefixes (`> > -`), list items also by indentation (two columns or
    more per level); HTML inside Markdown goes through docling's HTML backend and is counted like HTML.
    Block quotes have a much lower limit of their own: marko's parse time more than doubles with each
    level past ~20 (measured: 24 levels 0.8 s, 26 levels 4.6 s, 30 levels over a minute)."""
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            depth, quotes, pos = 0, 0, 0
            while match := _MD_CONTAINER.match(line, pos):
                depth, quotes, pos = depth + 1, quotes + match.group().lstrip().startswith(">"), match.end()
            if quotes > quote_limit:
                raise LimitExceeded(
                    f"Markdown nests block quotes more than {quote_limit} deep "
                    f"(limit {setting_name('parse_max_quote_depth')}={quote_limit})"
                )
            indent = len(line) - len(line.lstrip(" \t"))
            if depth + line.count("\t", 0, indent) * 2 + indent // 2 > limit:
                raise LimitExceeded(
                    f"Markdown is nested more than {limit} quotes or list levels deep "
                    f"(limit {setting_name('parse_max_depth')}={limit})"
                )
    _check_depth(_text_chunks(path), limit, "Markdown (its HTML)", markdown=True)


# ------------------------------------------------------------------------------------------ pages, archives


def _check_pages(path: Path, limit: int) -> None:
    """PDFium reads the page tree only (no page is loaded): milliseconds even for big files. No lock: the
    parse child runs one job at a time, so nothing else in its process is in PDFium."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        return  # unreadable: conversion.convert says why, in its own words
    try:
        pages = len(pdf)
    finally:
        pdf.close()
    if pages > limit:
        raise LimitExceeded(
            f"PDF has {pages} pages, more than the limit of {limit} ({setting_name('parse_max_pages')}={limit})"
        )


def _check_unzipped(path: Path, limit: int, label: str) -> None:
    """A zip bomb declares its true sizes or is cut short: zipfile never returns more bytes for a member than
    its central directory entry says (a lying entry fails its CRC check), and python-docx / python-pptx
    read through zipfile. So the declared total bounds what docling can be made to decompress."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptInput(f"{label} could not be read: {exc}") from exc
    if total > limit:
        raise LimitExceeded(
            f"{label} decompresses to {total} bytes, more than the limit of {limit} "
            f"({setting_name('parse_max_unzipped_bytes')}={limit})"
        )
