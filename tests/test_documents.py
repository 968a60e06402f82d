"""ingestflow.parsing over the real fixture files: conversion quality against docling's own ground truth,
page provenance, OCR of scanned pages with the bundled models, chunk sizes and error mapping.

Similarity thresholds sit a little below what was measured (see the printed figures) so that a real
regression fails while run-to-run noise does not.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ingestflow.chunks import Chunk
from ingestflow.errors import CorruptInput, PermanentError, UnsupportedFormat
from ingestflow.parsing import conversion, ocr
from ingestflow.parsing.chunking import chunk, count_tokens
from ingestflow.parsing.conversion import Conversion, convert, convert_detailed, to_markdown
from ingestflow.parsing.persistence import load_document, save_document
from tests.conftest import FIXTURES

DOCS = FIXTURES / "documents"
EXPECTED = FIXTURES / "expected"

# (file, format, min difflib ratio, min word recall). Measured with docling-slim 2.143.0 (ratio/recall):
# multi_page 0.998/0.997, ocr_test 1.000/1.000, word_sample 1.000/1.000, wiki_duck 0.987/0.997.
# The OCR page has 14 words, so its bar allows one misread word.
WITH_EXPECTED = [
    ("multi_page.pdf", "pdf", 0.97, 0.98),
    ("ocr_test.pdf", "pdf", 0.90, 0.90),
    ("word_sample.docx", "docx", 0.97, 0.98),
    ("wiki_duck.html", "html", 0.96, 0.98),
]
ALL_FIXTURES = [(name, fmt) for name, fmt, *_ in WITH_EXPECTED] + [("powerpoint_sample.pptx", "pptx")]

GENERATED_MD = """# Field notes

Ducks were observed on the north shore of the lake at dawn.

## Feeding

They ate duckweed, seeds and small snails.

- Mallards dabbled near the reeds
- Teals stayed in open water

## Counts

| species | count |
| ------- | ----- |
| mallard | 12    |
| teal    | 5     |
"""


def _words(text: str) -> list[str]:
    # Lowercase, whitespace-folded words; markdown punctuation is noise in either rendering.
    return re.findall(r"\w+", text.lower())


def similarity(got: str, want: str) -> tuple[float, float]:
    """(difflib ratio, word recall). The ratio runs over word sequences: character-level SequenceMatcher
    with autojunk off takes ~40 s on the 56 kB wiki page and autojunk on makes the figure meaningless."""
    got_words, want_words = _words(got), _words(want)
    ratio = difflib.SequenceMatcher(None, got_words, want_words, autojunk=False).ratio()
    recall = len(set(want_words) & set(got_words)) / max(1, len(set(want_words)))
    return ratio, recall


@pytest.fixture(scope="module")
def converted() -> dict[str, Conversion]:
    """Each fixture converted once; the first conversion also pays for importing docling (and, for the
    scanned PDF, for loading the OCR models)."""
    out: dict[str, Conversion] = {}
    for name, fmt in ALL_FIXTURES:
        t0 = time.perf_counter()
        out[name] = convert_detailed(DOCS / name, fmt)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        convert_detailed(DOCS / name, fmt)
        again = time.perf_counter() - t0
        print(f"\nconvert {name}: first call {first:.2f}s, warm {again:.2f}s")
    return out


@pytest.fixture(scope="module")
def chunked(converted: dict[str, Conversion]) -> dict[str, list[Chunk]]:
    t0 = time.perf_counter()
    out = {name: chunk(conv.document) for name, conv in converted.items()}
    print(f"\nchunked all fixtures in {time.perf_counter() - t0:.2f}s (tokenizer load included)")
    return out


def test_importing_the_module_does_not_import_docling() -> None:
    modules = "ingestflow.parsing.conversion, ingestflow.parsing.chunking, ingestflow.parsing.persistence"
    code = f"import sys, {modules}; print(sorted({{'docling', 'torch', 'transformers'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("name", "fmt", "min_ratio", "min_recall"), WITH_EXPECTED)
def test_markdown_matches_docling_ground_truth(
    converted: dict[str, Conversion], name: str, fmt: str, min_ratio: float, min_recall: float
) -> None:
    markdown = to_markdown(converted[name].document)
    ratio, recall = similarity(markdown, (EXPECTED / f"{name}.md").read_text())
    print(f"\n{name}: difflib ratio {ratio:.3f}, word recall {recall:.3f}")
    assert ratio >= min_ratio
    assert recall >= min_recall


def test_pptx_keeps_slide_text_and_table(converted: dict[str, Conversion]) -> None:
    doc = converted["powerpoint_sample.pptx"].document
    markdown = to_markdown(doc)
    for phrase in ("Test Table Slide", "A rectangle shape with this text inside.", "Second slide title"):
        assert phrase in markdown
    assert len(doc.tables) == 1
    slide_of = {item.text: item.prov[0].page_no for item in doc.texts if item.prov}
    assert slide_of["Test Table Slide"] == 1
    assert slide_of["Second slide title"] == 2


def test_native_pdf_has_paragraphs_headings_and_pages(converted: dict[str, Conversion]) -> None:
    conv = converted["multi_page.pdf"]
    doc = conv.document
    assert conv.notes == [] and conv.ocr_pages == []
    assert sorted(doc.pages) == [1, 2, 3, 4, 5]
    assert all(item.prov and 1 <= item.prov[0].page_no <= 5 for item in doc.texts)
    markdown = to_markdown(doc)
    # Lines are regrouped: a sentence broken across two printed lines reads as one.
    assert "predates modern computers and has evolved through several technological milestones." in markdown
    assert "## Specialized Word Processing Tools" in markdown


def test_pdf_chunks_carry_page_numbers_and_headings(chunked: dict[str, list[Chunk]]) -> None:
    chunks = chunked["multi_page.pdf"]
    screenwriting = next(c for c in chunks if "Final Draft" in c.text)
    assert (screenwriting.page_start, screenwriting.page_end) == (3, 3)
    assert screenwriting.headings == ["Specialized Word Processing Tools"]
    assert screenwriting.embed_text.startswith("Specialized Word Processing Tools\n")
    closing = next(c for c in chunks if "reflects humanity's broader technological progress" in c.text)
    assert closing.page_end == 5
    first = chunks[0]
    assert first.page_start == 1 and "The Evolution of the Word Processor" in first.text
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_pdf_table_rows_stay_rows_under_their_heading() -> None:
    """A born-digital table (issue 22's held-out report, made by scripts/make_eval_fixtures.py): each row one line
    of cells, the table in one chunk with its header row, under the section it is in; no cell taken for a heading."""
    report = Path(__file__).with_name("data") / "eval" / "library_programme_report.pdf"
    chunks = chunk(convert(report, "pdf"))
    results = next(c for c in chunks if "Hillside" in c.text)
    assert "Hillside | 87 | 39 | 840 | -21%" in results.text.splitlines()
    assert results.text.splitlines()[1].startswith("Branch | Children signed up")  # the header row
    assert results.headings == ["Results by branch"] and results.page_start == results.page_end == 3
    budget = next(c for c in chunks if "Prizes and medals" in c.text)
    assert budget.headings == ["Budget"] and "Budget line | Budgeted | Spent" in budget.text
    assert all(len(c.headings) == 1 and "|" not in c.headings[0] for c in chunks)


def test_scanned_pdf_is_ocrd_with_bundled_models(monkeypatch: pytest.MonkeyPatch) -> None:
    import rapidocr.utils.download_file as download_file

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("RapidOCR tried to download a model")

    monkeypatch.setattr(download_file.DownloadFile, "run", no_download)
    ocr._ocr_engine.cache_clear()  # build the engine under the patch, not reuse a cached one
    t0 = time.perf_counter()
    conv = convert_detailed(DOCS / "ocr_test.pdf", "pdf")
    print(f"\nocr_test.pdf with a fresh OCR engine: {time.perf_counter() - t0:.2f}s")
    assert conv.ocr_pages == [1]
    text = to_markdown(conv.document).lower()
    for word in ("docling", "bundles", "pdf", "document", "conversion", "json", "markdown", "self", "package"):
        assert word in text
    assert all(item.prov[0].page_no == 1 for item in conv.document.texts)


def test_a_warm_parse_child_has_run_the_ocr_models() -> None:
    """What a parse child does before its first job (ingestflow/parsing/worker.py serve): the models read a line."""
    assert "0123456789" in ocr.warm()


def test_only_textless_pages_are_ocrd(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    # Page 1: born-digital text; page 2: the scanned page.
    mixed = pdfium.PdfDocument.new()
    for source in ("multi_page.pdf", "ocr_test.pdf"):
        src = pdfium.PdfDocument(DOCS / source)
        mixed.import_pages(src, [0])
        src.close()
    path = tmp_path / "mixed.pdf"
    mixed.save(path)
    mixed.close()

    conv = convert_detailed(path, "pdf")
    assert conv.ocr_pages == [2] and conv.notes == []
    pages = {item.text: item.prov[0].page_no for item in conv.document.texts}
    assert pages["The Evolution of the Word Processor"] == 1
    ocr_text = " ".join(text for text, page in pages.items() if page == 2).lower()
    assert "docling bundles pdf document conversion" in ocr_text
    chunks = chunk(conv.document)
    # Both pages sit under no heading, so the chunker may merge them into one chunk spanning pages 1-2.
    assert any(c.page_end == 2 and "markdown" in c.text.lower() for c in chunks)


def test_scanned_pdf_without_ocr_is_noted_not_failed() -> None:
    conv = convert_detailed(DOCS / "ocr_test.pdf", "pdf", ocr=False)
    assert conv.ocr_pages == [] and conv.partial
    assert any("OCR off" in note for note in conv.notes)


@pytest.mark.parametrize(("name", "max_tokens"), [(name, 256) for name, _ in ALL_FIXTURES] + [("wiki_duck.html", 64)])
def test_chunks_fit_the_token_budget(
    converted: dict[str, Conversion], chunked: dict[str, list[Chunk]], name: str, max_tokens: int
) -> None:
    chunks = chunked[name] if max_tokens == 256 else chunk(converted[name].document, max_tokens=max_tokens)
    assert chunks
    lengths = [count_tokens(c.embed_text) for c in chunks]
    print(f"\n{name}: {len(chunks)} chunks at max_tokens={max_tokens}, longest {max(lengths)} tokens")
    assert max(lengths) <= max_tokens
    assert all(c.text.strip() and c.text in c.embed_text for c in chunks)


def test_generated_markdown(tmp_path: Path) -> None:
    # Stored under a non-.md name, as uploads are: the declared format must win over the file name.
    path = tmp_path / "upload-1234.bin"
    path.write_text(GENERATED_MD)
    doc = convert(path, "md")
    ratio, recall = similarity(to_markdown(doc), GENERATED_MD)
    print(f"\ngenerated markdown: difflib ratio {ratio:.3f}, word recall {recall:.3f}")
    assert ratio >= 0.95 and recall == 1.0
    assert len(doc.tables) == 1
    chunks = chunk(doc)
    feeding = next(c for c in chunks if "duckweed" in c.text)
    assert feeding.headings[-1] == "Feeding"
    assert feeding.page_start is None and feeding.page_end is None


def test_save_and_load_round_trip(converted: dict[str, Conversion], tmp_path: Path) -> None:
    for name, conv in converted.items():
        path = tmp_path / "parsed" / f"{name}.json"
        save_document(conv.document, path)
        loaded = load_document(path)
        assert to_markdown(loaded) == to_markdown(conv.document)
        if name == "multi_page.pdf":
            assert chunk(loaded) == chunk(conv.document)
    assert not list((tmp_path / "parsed").glob("*.tmp"))


def test_load_document_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"schema_name": "DoclingDocument", "name": ')
    with pytest.raises(CorruptInput):
        load_document(path)


def test_corrupt_pdf_raises_corrupt_input(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    with pytest.raises(CorruptInput, match="PDF could not be read"):
        convert(path, "pdf")


def test_other_unreadable_inputs(tmp_path: Path) -> None:
    broken_docx = tmp_path / "broken.docx"
    broken_docx.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptInput, match="DOCX could not be read"):
        convert(broken_docx, "docx")
    # A real PDF declared as a Word document: docling sniffs the content and refuses it.
    with pytest.raises(CorruptInput, match="DOCX could not be read"):
        convert(DOCS / "multi_page.pdf", "docx")
    with pytest.raises(CorruptInput, match="no such file"):
        convert(tmp_path / "missing.pdf", "pdf")
    with pytest.raises(CorruptInput, match="XLSX could not be read"):
        convert(broken_docx, "xlsx")
    with pytest.raises(UnsupportedFormat):
        convert(broken_docx, "odt")


def test_missing_layout_models_is_a_setup_error_not_a_corrupt_document(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="pipeline could not start") as info:
        convert(DOCS / "multi_page.pdf", "pdf", artifacts_path=tmp_path)
    assert not isinstance(info.value, CorruptInput)


class _FakeResult:
    def __init__(self, status: Any, document: Any = None, errors: list[str] | None = None) -> None:
        from docling.datamodel.base_models import DoclingComponentType, ErrorItem

        self.status = status
        self.document = document
        self.errors = [
            ErrorItem(component_type=DoclingComponentType.PIPELINE, module_name="fake", error_message=msg)
            for msg in errors or []
        ]


class _FakeConverter:
    def __init__(self, result: _FakeResult) -> None:
        self.result = result

    def convert(self, source: Any, raises_on_error: bool = True) -> _FakeResult:
        return self.result


def test_conversion_status_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    from docling.datamodel.base_models import ConversionStatus
    from docling_core.types.doc import DocItemLabel, DoclingDocument

    doc = DoclingDocument(name="partial")
    doc.add_text(label=DocItemLabel.TEXT, text="the part that survived")
    partial = _FakeResult(ConversionStatus.PARTIAL_SUCCESS, doc, ["page 2 failed to parse"])
    monkeypatch.setattr(conversion, "_converter", lambda *args: _FakeConverter(partial))
    conv = convert_detailed(DOCS / "word_sample.docx", "docx")
    assert conv.document is doc and conv.partial
    assert "page 2 failed to parse" in conv.notes[0]

    failed = _FakeResult(ConversionStatus.FAILURE, None, ["backend exploded"])
    monkeypatch.setattr(conversion, "_converter", lambda *args: _FakeConverter(failed))
    with pytest.raises(CorruptInput, match="DOCX could not be read: backend exploded"):
        convert(DOCS / "word_sample.docx", "docx")
