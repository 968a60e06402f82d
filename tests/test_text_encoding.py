"""Text in the encoding it was saved in (issue 23): Markdown and HTML in UTF-8, UTF-16 and UTF-32 (with or without a
byte-order mark) and the common single-byte encodings are recognised at upload and parsed to the same UTF-8 text;
binary garbage is still refused with a reason."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ingestflow.detect import Detected, detect
from ingestflow.errors import UnsupportedFormat
from ingestflow.parsing.limits import Limits
from ingestflow.parsing.worker import Job, parse_to_files
from ingestflow.text_encoding import as_utf8, decode

# Accents, the euro sign, curly quotes and a dash: what a wrong guess at the encoding garbles first.
NOTE = ("# Café notes\n\nThe naïve façade cost 5 € — “quoted” by the Zürich team; it’s due in März.\n\n"
        "- Crème brûlée for Zoë\n- Ørsted and Åse paid £40\n")
# ISO-8859-15 has the euro sign (at A4) but no curly quotes or dashes.
LATIN9 = "# Café notes\n\nThe naïve façade cost 5 € in Zürich; Crème brûlée for Zoë.\n"

ENCODINGS = [
    ("utf-8", NOTE, NOTE.encode("utf-8")),
    ("utf-8 with BOM", NOTE, NOTE.encode("utf-8-sig")),
    ("utf-16 LE with BOM (Notepad's Unicode)", NOTE, NOTE.encode("utf-16")),
    ("utf-16 BE with BOM", NOTE, b"\xfe\xff" + NOTE.encode("utf-16-be")),
    ("utf-16 LE, no BOM", NOTE, NOTE.encode("utf-16-le")),
    ("utf-16 BE, no BOM", NOTE, NOTE.encode("utf-16-be")),
    ("utf-32 with BOM", NOTE, NOTE.encode("utf-32")),
    ("utf-32 LE, no BOM", NOTE, NOTE.encode("utf-32-le")),
    ("windows-1252", NOTE, NOTE.encode("cp1252")),
    ("iso-8859-15", LATIN9, LATIN9.encode("iso8859_15")),
    ("iso-8859-1", LATIN9.replace("€", "EUR"), LATIN9.replace("€", "EUR").encode("latin_1")),
]

PAGE = ('<!DOCTYPE html>\n<html><head><meta charset="windows-1252"><title>Prices</title></head>\n'
        "<body><h1>Café prices</h1><p>The naïve façade cost 5 € — “quoted” in Zürich.</p></body></html>\n")


@pytest.mark.parametrize(("label", "text", "data"), ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_each_encoding_reads_as_the_original(label: str, text: str, data: bytes, tmp_path: Path) -> None:
    assert decode(data).text == text, label
    assert as_utf8(data, "md") == text.encode("utf-8")
    path = tmp_path / "note.md"
    path.write_bytes(data)
    assert detect(path) == Detected("text", "md")
    # The opening alone (what an upload sniffs), cut inside a character, is still text.
    assert decode(data[:101], partial=True).text == text[: len(decode(data[:101], partial=True).text)]


def test_html_is_read_by_its_declared_charset(tmp_path: Path) -> None:
    data = PAGE.encode("cp1252")
    decoded = decode(data)
    assert decoded.text == PAGE and decoded.encoding == "cp1252" and decoded.declared
    # Handed to the parser as UTF-8, the page says so, or it would be decoded again as windows-1252.
    assert as_utf8(data, "html").decode("utf-8") == PAGE.replace('charset="windows-1252"', 'charset="utf-8"')
    path = tmp_path / "page.html"
    path.write_bytes(data)
    assert detect(path) == Detected("text", "html")
    # An XHTML page declares its encoding in its XML declaration as well: both declarations are rewritten.
    xhtml = '<?xml version="1.0" encoding="windows-1252"?>\n' + PAGE
    assert as_utf8(xhtml.encode("cp1252"), "html").decode("utf-8") == xhtml.replace("windows-1252", "utf-8")
    # A page labelled ISO-8859-1 is read as windows-1252, as browsers do: byte 80 is the euro sign.
    latin1 = PAGE.replace("windows-1252", "iso-8859-1").encode("cp1252")
    assert "5 €" in decode(latin1).text
    # A page whose declaration is wrong (UTF-8 bytes saying windows-1252) is read as what it is, and handed on as
    # it came.
    lying = PAGE.replace("—", "-").replace("“", '"').replace("”", '"').encode("utf-8")  # all cp1252-decodable
    assert decode(lying).text == lying.decode("utf-8") and as_utf8(lying, "html") == lying


def test_binary_garbage_is_refused_with_a_reason(tmp_path: Path) -> None:
    rng = random.Random(23)
    for n, data in enumerate([bytes(rng.getrandbits(8) for _ in range(4096)),
                              b"\xff\xfe" + bytes(rng.getrandbits(8) for _ in range(4096)),  # a BOM, then noise
                              b"text\x00with\x00nul\x00bytes" * 50]):
        path = tmp_path / f"garbage{n}.bin"
        path.write_bytes(data)
        with pytest.raises(UnsupportedFormat) as refused:
            detect(path)
        assert "supported formats" in str(refused.value), refused.value
        with pytest.raises(UnsupportedFormat, match="text"):
            decode(data)


@pytest.mark.parametrize(("name", "data", "expected"), [
    ("note.md", NOTE.encode("utf-16"), ["naïve façade cost 5 € — “quoted”", "Crème brûlée for Zoë"]),
    # docling's HTML backend writes every page's curly quotes and dashes as ASCII, whatever its encoding.
    ("page.html", PAGE.encode("cp1252"), ["Café prices", 'The naïve façade cost 5 € - "quoted" in Zürich.']),
])
def test_parsed_content_is_the_original_text(name: str, data: bytes, expected: list[str], tmp_path: Path) -> None:
    """Through the parse child's own function: the stored Markdown is UTF-8 and reads as the original."""
    source = tmp_path / name
    source.write_bytes(data)
    fmt = detect(source).format
    job = Job(source, fmt, tmp_path / "parsed.json", tmp_path / "content.md", None, False, Limits(64, 16, 100, 10**8))
    parse_to_files(job)
    content = (tmp_path / "content.md").read_text(encoding="utf-8")
    for phrase in expected:
        assert phrase in content, content
    assert source.read_bytes() == data  # the upload itself is kept as it came
