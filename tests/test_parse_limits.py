"""Bounded parsing: structural guards refuse pathological input in milliseconds, every parse runs in a warm
child process that is killed at the wall-clock limit, and the worker is free (and the next parse works) at
once. Everything goes through tasks.parse.parse_document, as the parse stage calls it, on real docling."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingestflow.errors import CorruptInput, LimitExceeded, TransientError, is_transient
from ingestflow.parsing import limits, worker
from ingestflow.parsing.conversion import convert, to_markdown
from ingestflow.parsing.limits import Limits
from ingestflow.parsing.persistence import save_document
from ingestflow.pipeline import ParseResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.parse import parse_document
from tests.conftest import FIXTURES

DOCS = FIXTURES / "documents"
LIMITS = Limits(max_depth=256, max_quote_depth=16, max_pages=2000, max_unzipped_bytes=1 << 30)

Parse = Callable[..., tuple[ParseResult, Path]]


@pytest.fixture(autouse=True, scope="module")
def _cold_ocr() -> Iterator[None]:
    """These tests start a dozen parse children and none OCRs a page: each would spend 2 s warming the OCR models
    (ingestflow/parsing/ocr.py `warm`, tested on its own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INGESTFLOW_PARSE_CHILD_WARM_OCR", "false")
        yield


@pytest.fixture
def parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Parse]:
    """parse_document on a file, with settings overridden as environment variables (get_settings is cached);
    returns the result and the work directory the stage wrote to."""

    def run(source: Path, fmt: str, **settings: object) -> tuple[ParseResult, Path]:
        for name, value in settings.items():
            monkeypatch.setenv(f"INGESTFLOW_{name.upper()}", str(value))
        get_settings.cache_clear()
        work = tmp_path / f"work-{time.monotonic_ns()}"
        ref = DocumentRef("d1", None, "owner", "text", fmt, source.name, None, source, work)
        return parse_document(ref), work

    yield run
    get_settings.cache_clear()


def _deep_html(path: Path, levels: int) -> Path:
    # ~100 bytes a level: the 50,000-deep page is ~5 MB, like the one that held a worker for 269 s.
    opening = '<div class="level" data-note="nested on purpose">a line of text at this level, and some more\n'
    path.write_text("<html><body>" + opening * levels + "bottom" + "</div>" * levels + "</body></html>")
    return path


def _long_pdf(path: Path, copies: int) -> Path:
    import pypdfium2 as pdfium

    src = pdfium.PdfDocument(DOCS / "multi_page.pdf")
    out = pdfium.PdfDocument.new()
    for _ in range(copies):
        out.import_pages(src)
    out.save(path)
    out.close()
    src.close()
    return path


def _idle_child_pid() -> int:
    (pid,) = [child.proc.pid for child in worker._idle]  # tests parse one at a time: one warm child
    return pid


# ------------------------------------------------------------------------------------------------ guards


def test_50000_deep_html_fails_fast_naming_the_limit(parse: Parse, tmp_path: Path) -> None:
    page = _deep_html(tmp_path / "deep.html", 50_000)
    assert page.stat().st_size > 4_000_000
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded, match=r"HTML is nested more than 256 .*INGESTFLOW_PARSE_MAX_DEPTH=256") as err:
        parse(page, "html")
    took = time.perf_counter() - t0
    print(f"\n50,000-deep HTML ({page.stat().st_size / 1e6:.1f} MB) refused in {took:.2f} s (child start included)")
    assert took < 30
    assert not is_transient(err.value)
    # The check itself reads only the first few hundred tags.
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded):
        limits.check(page, "html", LIMITS)
    assert time.perf_counter() - t0 < 1


def test_depth_limit_counts_as_beautifulsoup_nests(tmp_path: Path) -> None:
    # 256 levels pass, 257 do not; void elements, self-closed tags and closed siblings add nothing.
    siblings = "<p>x</p><br><img src=a><div/>" * 1000
    ok = tmp_path / "ok.html"
    ok.write_text("<div>" * 255 + siblings + "<span>y</span>" + "</div>" * 255)
    limits.check(ok, "html", LIMITS)
    deep = tmp_path / "deep.html"
    deep.write_text("<div>" * 255 + "<span>y" + "<p>unclosed" * 2)  # html.parser nests unclosed <p>s
    with pytest.raises(LimitExceeded):
        limits.check(deep, "html", LIMITS)
    limits.check(DOCS / "wiki_duck.html", "html", LIMITS)  # a real page is ~20 deep


def test_markdown_nesting_guards(parse: Parse, tmp_path: Path) -> None:
    quotes = tmp_path / "quotes.md"
    quotes.write_text("# Reply chain\n\n" + "> " * 30 + "the original message\n")  # marko: over a minute
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded, match="INGESTFLOW_PARSE_MAX_QUOTE_DEPTH=16"):
        parse(quotes, "md")
    assert time.perf_counter() - t0 < 30
    lists = tmp_path / "lists.md"
    lists.write_text("".join("  " * i + "- item\n" for i in range(300)))
    with pytest.raises(LimitExceeded, match="INGESTFLOW_PARSE_MAX_DEPTH=256"):
        limits.check(lists, "md", LIMITS)
    html = tmp_path / "html.md"
    html.write_text("text <https://example.org> <a@b.example>\n\n" + "<div>" * 300 + "x" + "</div>" * 300)
    with pytest.raises(LimitExceeded, match=r"Markdown \(its HTML\)"):
        limits.check(html, "md", LIMITS)
    fine = tmp_path / "fine.md"  # autolinks are not tags; modest quoting and lists pass
    fine.write_text("> > quoted\n\n- a\n  - b\n    - c\n\n" + "<https://example.org/x> " * 500 + "\n")
    limits.check(fine, "md", LIMITS)


def test_zip_bomb_docx_is_refused(parse: Parse, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(DOCS / "word_sample.docx") as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("word/media/padding.bin", bytes(64 * 1024 * 1024))  # 64 MiB of zeros, ~64 kB stored
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(LimitExceeded, match=r"DOCX decompresses to \d+ bytes.*INGESTFLOW_PARSE_MAX_UNZIPPED_BYTES"):
        parse(bomb, "docx", parse_max_unzipped_bytes=32 * 1024 * 1024)


def test_pdf_page_limit(parse: Parse) -> None:
    with pytest.raises(LimitExceeded, match="PDF has 5 pages, .*INGESTFLOW_PARSE_MAX_PAGES=3"):
        parse(DOCS / "multi_page.pdf", "pdf", parse_max_pages=3)


def test_not_a_zip_is_still_corrupt_input(tmp_path: Path) -> None:
    fake = tmp_path / "fake.docx"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(CorruptInput, match="DOCX could not be read"):
        limits.check(fake, "docx", LIMITS)


# ------------------------------------------------------------------------------------------- wall clock


def test_slow_parse_is_killed_at_the_limit_and_the_next_parse_works(parse: Parse, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.md"
    tiny.write_text("# Note\n\nStill parses.\n")
    parse(tiny, "md")  # a warm child, so the limit is measured on the conversion alone
    busy_pid = _idle_child_pid()
    long_pdf = _long_pdf(tmp_path / "long.pdf", 40)  # 200 pages: ~10 s of docling here

    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded, match=r"longer than 1 s .*INGESTFLOW_PARSE_TIMEOUT_S=1") as err:
        parse(long_pdf, "pdf", parse_timeout_s=1)
    freed = time.perf_counter() - t0
    print(f"\n200-page PDF stopped after {freed:.2f} s at a 1 s limit")
    assert not is_transient(err.value)
    assert freed < 4  # the caller (a worker thread) is free right away, not when docling would have finished
    with pytest.raises(ProcessLookupError):
        os.kill(busy_pid, 0)  # killed and reaped
    assert _idle_child_pid() != busy_pid  # its replacement, started at the kill

    t0 = time.perf_counter()
    result, work = parse(tiny, "md", parse_timeout_s=60)
    print(f"next parse, on the replacement child: {time.perf_counter() - t0:.2f} s")
    assert "Still parses." in (work / "content.md").read_text()
    assert result.page_count is None


def test_a_child_that_dies_otherwise_is_a_transient_error(parse: Parse, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.md"
    tiny.write_text("# Note\n\nStill parses.\n")
    parse(tiny, "md")
    pid = _idle_child_pid()
    long_pdf = _long_pdf(tmp_path / "long.pdf", 40)
    # What the OOM killer does: SIGKILL from outside, mid-parse.
    threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(TransientError, match="died while parsing .*SIGKILL") as err:
        parse(long_pdf, "pdf", parse_timeout_s=120)
    assert is_transient(err.value)
    _, work = parse(tiny, "md")
    assert "Still parses." in (work / "content.md").read_text()


# ---------------------------------------------------------------------------------------- same results


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("multi_page.pdf", "pdf"),
        ("word_sample.docx", "docx"),
        ("wiki_duck.html", "html"),
        ("powerpoint_sample.pptx", "pptx"),
    ],
)
def test_fixture_parses_as_it_did_in_process(parse: Parse, tmp_path: Path, name: str, fmt: str) -> None:
    result, work = parse(DOCS / name, fmt)
    doc = convert(DOCS / name, fmt)  # what parse_document did before, in this process
    assert (work / "content.md").read_text() == to_markdown(doc)
    local = tmp_path / "local.json"
    save_document(doc, local)
    assert json.loads((work / "parsed.json").read_text()) == json.loads(local.read_text())
    assert result.page_count == (len(doc.pages) or None)
    assert result.model and result.model.startswith("docling-")


# ------------------------------------------------------------------------------------------ bounded memory


def test_a_warm_child_is_replaced_after_its_parses_or_above_its_memory_bound(parse: Parse, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.md"
    tiny.write_text("# Note\n\nStill parses.\n")
    worker._shutdown()  # earlier tests' warm child has parses of its own: start from a fresh one
    parse(tiny, "md", parse_child_max_parses=2)
    first = _idle_child_pid()
    parse(tiny, "md", parse_child_max_parses=2)  # its second parse: replaced once it is done
    second = _idle_child_pid()
    assert second != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # stopped and reaped, not left running beside its replacement
    parse(tiny, "md", parse_child_max_parses=2)
    assert _idle_child_pid() == second  # one parse on the new child: kept
    # A bound below what any Python process holds: replaced after every parse, and the parses still work.
    _, work = parse(tiny, "md", parse_child_max_rss_bytes=1024 * 1024)
    assert _idle_child_pid() != second
    assert "Still parses." in (work / "content.md").read_text()
