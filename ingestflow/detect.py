"""What a file is, from its bytes (magic numbers), never from its name."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ingestflow.errors import UnsupportedFormat
from ingestflow.text_encoding import decode


@dataclass(frozen=True)
class Format:
    """One format the pipeline takes: its kind (which stages run), what it is called, its MIME type and the file
    name extensions it goes by. Everything that lists formats (the 415 reason, GET /v1/formats, the dashboard's
    drop zone, the CLI's help) reads this table."""

    name: str
    kind: str  # "text" (parsed) | "audio" (transcribed)
    label: str
    mime_type: str
    extensions: tuple[str, ...]


FORMATS = {f.name: f for f in (
    Format("pdf", "text", "PDF", "application/pdf", ("pdf",)),
    Format("docx", "text", "Word", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
           ("docx",)),
    Format("pptx", "text", "PowerPoint",
           "application/vnd.openxmlformats-officedocument.presentationml.presentation", ("pptx",)),
    # Every sheet's tables, each row chunked with its column names and headed by its sheet's name.
    Format("xlsx", "text", "Excel workbook", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           ("xlsx",)),
    Format("html", "text", "HTML", "text/html", ("html", "htm")),
    Format("md", "text", "Markdown or plain text", "text/markdown", ("md", "markdown", "txt")),
    Format("asciidoc", "text", "AsciiDoc", "text/asciidoc", ("adoc", "asciidoc")),
    # A table: each row is chunked with its column names (docling's table serialisation).
    Format("csv", "text", "CSV table", "text/csv", ("csv", "tsv")),
    # Photos and scans of pages are documents too: OCR'd like a scanned PDF (ingestflow/parsing/images.py).
    Format("png", "text", "PNG image", "image/png", ("png",)),
    Format("jpeg", "text", "JPEG image", "image/jpeg", ("jpg", "jpeg")),
    Format("tiff", "text", "TIFF image", "image/tiff", ("tif", "tiff")),
    Format("bmp", "text", "BMP image", "image/bmp", ("bmp",)),
    Format("webp", "text", "WEBP image", "image/webp", ("webp",)),
    Format("wav", "audio", "WAV audio", "audio/wav", ("wav",)),
    Format("mp3", "audio", "MP3 audio", "audio/mpeg", ("mp3",)),
    Format("m4a", "audio", "M4A/AAC audio", "audio/mp4", ("m4a", "aac")),
    Format("flac", "audio", "FLAC audio", "audio/flac", ("flac",)),
    Format("ogg", "audio", "Ogg/Opus audio", "audio/ogg", ("ogg", "oga", "opus")),
    Format("mp4", "audio", "MP4/MOV video (its sound)", "video/mp4", ("mp4", "mov", "m4v")),
    # A transcript with its timings: the transcribe stage reads its cues instead of listening, and every later
    # stage treats it as a recording, cited by seconds.
    Format("vtt", "audio", "WebVTT subtitles", "text/vtt", ("vtt",)),
    Format("srt", "audio", "SRT subtitles", "application/x-subrip", ("srt",)),
)}
TEXT_FORMATS = {name for name, f in FORMATS.items() if f.kind == "text"}
AUDIO_FORMATS = {name for name, f in FORMATS.items() if f.kind == "audio"}
# How the parse and transcribe stages take each in: documents saved as text are decoded from the encoding they were
# saved in, images OCR'd page by page, subtitles read cue by cue instead of listened to.
TEXT_ENCODED = {name for name, f in FORMATS.items() if f.kind == "text" and f.mime_type.startswith("text/")}
IMAGE_FORMATS = {name for name, f in FORMATS.items() if f.mime_type.startswith("image/")}
SUBTITLE_FORMATS = {name for name, f in FORMATS.items()
                    if f.kind == "audio" and not f.mime_type.startswith(("audio/", "video/"))}

# puremagic's extension guesses, folded onto the formats the pipeline takes.
_MAGIC_TO_FORMAT = {
    ".pdf": "pdf",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jfif": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".webp": "webp",
    ".wav": "wav",
    ".mp3": "mp3",
    ".flac": "flac",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".opus": "ogg",
    ".m4a": "m4a",
    ".f4a": "m4a",
    ".aac": "m4a",
    ".mp4": "mp4",
    ".mov": "mp4",
    ".m4v": "mp4",
}


@dataclass(frozen=True)
class _Signature:
    """What puremagic's signature (kept under its first part, which has matched) means: the format, the second part
    it wants where it has one (RIFF then WAVE or WEBP at 8, ID3 then a frame's name at 10), and puremagic's rank of
    the match (its confidence, from the matched span's length, then that length)."""

    format: str
    rank: tuple[float, int]
    then: tuple[int, bytes] | None = None

    def matches(self, head: bytes) -> bool:
        if self.then is None:
            return True
        at, part = self.then
        return head[at:at + len(part)] == part


def _rank(span: int) -> tuple[float, int]:
    return (0.8 if span >= 9 else span / 10, span)


def _signatures() -> dict[tuple[int, bytes], list[_Signature]]:
    """puremagic's signatures of the formats taken, in its order, under their first part: 286 (second parts
    included) under 51 first parts. Trying all 1,437 of its signatures in Python for every upload was 0.3-0.45 ms of
    the API's 3 ms an upload under 100 concurrent ones, these take 6 us; the answer is the same (tests/test_units.py
    checks it on every signature puremagic has). Its footer signatures are left out: none is of a format taken, and
    the one second part at the end of a file (an MP3's TAG after its ID3) means the format its first part does."""
    from puremagic.main import magic_header_array, multi_part_dict

    out: dict[tuple[int, bytes], list[_Signature]] = {}
    for row in magic_header_array:
        first = (row.offset, row.byte_match)
        found = []
        if fmt := _MAGIC_TO_FORMAT.get(row.extension.lower()):
            found.append(_Signature(fmt, _rank(len(row.byte_match))))
        for part in multi_part_dict.get(row.byte_match, ()):
            if (fmt := _MAGIC_TO_FORMAT.get(part.extension.lower())) and part.offset >= 0:
                span = part.offset + len(part.byte_match) - row.offset
                found.append(_Signature(fmt, _rank(span), (part.offset, part.byte_match)))
        for sig in found:
            if sig not in out.setdefault(first, []):
                out[first].append(sig)
    return out


_SIGNATURES = _signatures()


def _magic_format(head: bytes) -> str | None:
    """The format taken whose signature matches best (puremagic's first guess that is one), or None."""
    best: _Signature | None = None
    for (at, first), sigs in _SIGNATURES.items():
        if head[at:at + len(first)] == first:
            for sig in sigs:
                if (best is None or sig.rank > best.rank) and sig.matches(head):
                    best = sig
    return best.format if best else None


@dataclass(frozen=True)
class Detected:
    kind: str  # "text" | "audio"
    format: str

    @property
    def mime_type(self) -> str:
        return FORMATS[self.format].mime_type


def _ooxml(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return None
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    return None


def _mp4_brand(head: bytes) -> str:
    # ISO-BMFF major brand: audio-only M4A files say so; everything else is a video container.
    brand = head[8:12]
    return "m4a" if brand in (b"M4A ", b"M4B ") else "mp4"


def _text_format(head: bytes, name: str) -> str | None:
    """The text flavour (html, vtt, srt, csv, asciidoc, md) of text in any encoding ingestflow.text_encoding
    reads (the head of the file: a character cut at its end is fine); None for anything else."""
    try:
        text = decode(head, partial=True).text
    except UnsupportedFormat:
        return None
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html")) or "<html" in lowered[:1024]:
        return "html"
    if re.match(r"webvtt(?:[ \t\r\n]|$)", lowered):
        return "vtt"
    if _SRT_CUE.match(lowered):
        return "srt"
    if _delimited(text, strong=not _named(name, "csv")):
        return "csv"
    if _named(name, "asciidoc"):
        return "asciidoc"  # plain text to the bytes: its name tells its markup from Markdown's
    return "md"


def _named(name: str, fmt: str) -> bool:
    return name.rsplit(".", 1)[-1].lower() in FORMATS[fmt].extensions if "." in name else False


_DELIMITERS = ",;\t|"
# An SRT file opens with its first cue: a number, then "00:00:01,000 --> 00:00:04,000".
_SRT_CUE = re.compile(r"\d+[ \t]*\r?\n[ \t]*\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}[ \t]*-->")


def _delimited(text: str, *, strong: bool) -> bool:
    """Rows of one delimiter-separated table: every complete line of the head splits into the same number of
    fields (two or more). Named .csv, two lines will do; otherwise (a note whose lines each hold one comma is
    not a table) at least five lines of at least three fields, and no Markdown table (its rows start with '|')."""
    import csv

    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(text.splitlines()) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line of a cut head may be cut too
    fields = 3 if strong else 2
    if len(lines) < (5 if strong else 2) or lines[0].lstrip().startswith("|"):
        return False
    if not any(q in text for q in "\"'") and not any(min(line.count(d) for line in lines) >= fields - 1
                                                    for d in _DELIMITERS):
        # Unquoted, each line is one row of its delimiters' count + 1 fields: no delimiter on every line often
        # enough, no table. Decided here without the Sniffer (1 ms of each upload's 12 ms of CPU for a note).
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), _DELIMITERS)
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return len(widths) == 1 and widths.pop() >= fields


def detect(path: Path, name: str = "") -> Detected:
    """What the file is, by its content; `name` (the upload's file name) only tells text flavours apart: a CSV
    table from text whose lines happen to hold the same number of commas, AsciiDoc from Markdown."""
    with path.open("rb") as fh:
        head = fh.read(8192)
    if not head:
        raise UnsupportedFormat("the file is empty")
    if head.startswith(b"PK\x03\x04"):
        fmt = _ooxml(path)
        if fmt:
            return Detected("text", fmt)
        raise UnsupportedFormat("a ZIP archive that is not a Word (.docx), PowerPoint (.pptx) or Excel (.xlsx) file")
    if head[4:8] == b"ftyp":
        return Detected("audio", _mp4_brand(head))
    fmt = _magic_format(head)
    if fmt:
        return Detected(FORMATS[fmt].kind, fmt)
    text_fmt = _text_format(head, name)
    if text_fmt:
        return Detected(FORMATS[text_fmt].kind, text_fmt)
    raise UnsupportedFormat(f"unrecognised file content; supported formats: {', '.join(sorted(FORMATS))}")


_NAME_FAMILY = {ext: f.kind for f in FORMATS.values() for ext in f.extensions}


def check_name_agrees(filename: str, detected: Detected) -> None:
    """A file named like audio whose bytes are text (or the reverse) is a mistake worth refusing loudly."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    family = _NAME_FAMILY.get(ext)
    if family and family != detected.kind:
        raise UnsupportedFormat(
            f"'{filename}' is named like a {family} file but its content is {detected.format} ({detected.kind})"
        )
