"""Text files in the encoding they were saved in, read as Unicode (issue 23).

People save Markdown and web pages in whatever their tool writes: UTF-16 with a byte-order mark (Windows
Notepad's "Unicode"), windows-1252 (older intranet pages, mail exports), ISO-8859-15. The order, as browsers
read a page (WHATWG Encoding):

1. a byte-order mark states the encoding (UTF-32 is tested before UTF-16, whose little-endian mark begins
   UTF-32's);
2. else UTF-8, when the bytes are valid UTF-8 (a page saved as UTF-8 under a template still declaring
   ISO-8859-1 is common, while text in a single-byte encoding is almost never valid UTF-8 by accident);
3. else the document's own declaration (`<meta charset>`, `<meta http-equiv content="...; charset=">`, an XML
   declaration), read from its ASCII-compatible opening; ISO-8859-1 and US-ASCII are read as windows-1252, a
   superset of both, as browsers do;
4. else charset-normalizer's guess. Single-byte encodings cannot be told apart from bytes alone (a French text
   in windows-1252 came out as Baltic cp1257, "coûte" as "coūte"): where windows-1252 or ISO-8859-15 reads the
   bytes about as cleanly as the best guess, the Western encoding is taken (ISO-8859-15 only when byte A4, its
   euro sign, occurs and none of the C1 range that windows-1252 uses for its punctuation).

Bytes that decode to no readable text (a NUL, control characters, a binary file) are refused with a reason.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from ingestflow.errors import UnsupportedFormat

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# A page's own declaration: <meta charset=...>, <meta http-equiv ... charset=...>, or an XML declaration. Group 1 is
# what comes before the label, group 2 the label.
_DECLARATION = (r"""(<meta[^>]{0,300}?charset\s*=\s*["']?\s*|<\?xml[^>]{0,200}?encoding\s*=\s*["'])"""
                r"([A-Za-z0-9_.:-]{1,40})")
_DECLARED = re.compile(_DECLARATION.encode("ascii"), re.IGNORECASE)
_DECLARATION_WINDOW = 4096  # bytes of the opening searched for a declaration
_AS_WINDOWS_1252 = {"iso8859-1", "latin-1", "ascii"}  # browsers read these labels as windows-1252
_WESTERN = {"cp1252", "iso8859_15", "latin_1"}  # charset-normalizer's names
_WESTERN_MARGIN = 0.1  # of charset-normalizer's "chaos" (0: clean, 1: noise) above the best guess
_MAX_CONTROL_SHARE = 0.01  # of the characters: control characters (tab, newlines, form feed aside) or U+FFFD
# Counted by the regex engine: a character at a time in Python was 0.5 ms of an upload's checks (8 KB of a note).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # a Python codec name
    declared: bool  # by a byte-order mark or the document's own declaration, rather than guessed


def decode(data: bytes, *, partial: bool = False) -> Decoded:
    """The bytes as text. `partial`: the bytes are the opening of a longer file, so a character cut at the end
    is not an error. Raises UnsupportedFormat when they are not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _readable(_decode(data[len(bom):], encoding, partial), encoding, declared=True)
            except UnicodeDecodeError:
                raise UnsupportedFormat(f"the file starts with the byte-order mark of {encoding} but is not "
                                        f"{encoding} text") from None
    try:
        return _readable(_decode(data, "utf-8", partial), "utf-8", declared=False)
    except UnicodeDecodeError:
        pass
    declared = _declared(data)
    if declared is not None:
        try:
            return _readable(_decode(data, declared, partial), declared, declared=True)
        except UnicodeDecodeError:
            pass  # a page that lies about its encoding is read as if it had said nothing
    # An opening cut inside a UTF-16 or UTF-32 unit is guessed from its whole units.
    encoding = _guess(data[: len(data) - len(data) % 4] if partial else data)
    try:
        return _readable(_decode(data, encoding, partial), encoding, declared=False)
    except UnicodeDecodeError:
        raise UnsupportedFormat("the file is neither text in a known encoding nor a supported binary format") from None


def _decode(data: bytes, encoding: str, partial: bool) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    return decoder.decode(data, final=not partial)


def _declared(data: bytes) -> str | None:
    head = data[:_DECLARATION_WINDOW]
    if b"\x00" in head:
        return None  # not ASCII-compatible: a declaration cannot be read this way (and UTF-16 has a BOM or a guess)
    match = _DECLARED.search(head)
    if match is None:
        return None
    label = match.group(2).decode("ascii")
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    if name in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        return None  # ASCII-compatible bytes saying "UTF-16" are wrong about it (browsers read them as UTF-8)
    return "cp1252" if name in _AS_WINDOWS_1252 else name


def _guess(data: bytes) -> str:
    from charset_normalizer import from_bytes

    results = list(from_bytes(data))
    if not results:
        raise UnsupportedFormat("the file is neither text in a known encoding nor a supported binary format")
    best = min(results, key=lambda r: r.chaos)
    if best.encoding.startswith("utf"):
        return str(best.encoding)
    western = [r for r in results if r.encoding in _WESTERN and r.chaos <= best.chaos + _WESTERN_MARGIN]
    if not western:
        return str(best.encoding)
    euro_at_a4 = b"\xa4" in data and not any(0x80 <= b <= 0x9F for b in data)
    return "iso8859_15" if euro_at_a4 else "cp1252"


def _readable(text: str, encoding: str, *, declared: bool) -> Decoded:
    if "\x00" in text:
        raise UnsupportedFormat("the file holds NUL characters: it is not text in a known encoding")
    controls = len(_CONTROLS.findall(text))
    if text and controls > _MAX_CONTROL_SHARE * len(text):
        raise UnsupportedFormat(f"the file reads as {controls} control characters in {len(text)}: it is not text")
    return Decoded(text, encoding, declared)


def as_utf8(data: bytes, fmt: str) -> bytes:
    """A text document's bytes as UTF-8 without a byte-order mark, what the parser reads; an HTML page's declared
    charset (meta or XML declaration) says UTF-8 too, or the parser would decode its UTF-8 bytes a second time, as
    windows-1252."""
    decoded = decode(data)
    if decoded.encoding == "utf-8" and not data.startswith(codecs.BOM_UTF8):
        return data  # already what the parser reads, declaration and all
    text = decoded.text
    if fmt == "html":
        text = re.sub(_DECLARATION, r"\1utf-8", text, flags=re.IGNORECASE)  # each of them: they must agree
    return text.encode("utf-8")
