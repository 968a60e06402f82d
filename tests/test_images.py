"""Photos and scans of pages (issue 23): PNG, JPEG, TIFF (every page), BMP and WEBP are OCR'd like a scanned PDF
by the parse stage (tasks.parse.parse_document, in the warm parse child, with the RapidOCR models bundled in its
wheel), chunked with page numbers; an image without text parses to nothing and says so."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ingestflow.detect import Detected, detect
from ingestflow.parsing.chunking import chunk
from ingestflow.parsing.persistence import load_document
from ingestflow.pipeline import ParseResult
from ingestflow.refs import DocumentRef
from ingestflow.settings import get_settings
from tasks.parse import parse_document

pytestmark = pytest.mark.slow  # real OCR: a second or two a page on two cores

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NOTICE = ["NOTICE TO RESIDENTS", "The community hall on Mill Lane will be closed",
          "from Monday 12 January until Friday 16 January",
          "while the heating boiler is replaced. Bookings move to St Anne's church."]
SECOND_PAGE = ["Page two of the letter", "Please call the housing office on 0161 496 0000",
               "before the end of the month."]


def typed_photo(lines: list[str], seed: int = 1) -> Image.Image:
    """Typed lines on off-white paper, turned a little and softened with sensor noise: a phone photo of a notice."""
    font = ImageFont.truetype(FONT, 40)
    page = Image.new("L", (1800, 160 + 80 * len(lines)), 238)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((90, 80 + 80 * i), line, fill=25, font=font)
    page = page.rotate(1.2, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=238)
    page = page.filter(ImageFilter.GaussianBlur(0.8))
    noise = Image.frombytes("L", page.size, random.Random(seed).randbytes(page.width * page.height))
    return Image.blend(page, noise, 0.08).convert("RGB")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def recall(got: str, lines: list[str]) -> float:
    want, have = words(" ".join(lines)), set(words(got))
    return sum(1 for w in want if w in have) / len(want)


Parse = Callable[[Path], tuple[ParseResult, Path]]


@pytest.fixture
def parse(tmp_path: Path) -> Iterator[Parse]:
    """parse_document as the stage calls it: the result and the work directory it wrote to."""
    get_settings.cache_clear()

    def run(source: Path) -> tuple[ParseResult, Path]:
        work = tmp_path / f"work-{time.monotonic_ns()}"
        fmt = detect(source).format
        ref = DocumentRef("d1", None, "owner", "text", fmt, source.name, None, source, work)
        return parse_document(ref), work

    yield run


@pytest.mark.parametrize(("fmt", "suffix"), [("png", "png"), ("jpeg", "jpg"), ("bmp", "bmp"), ("webp", "webp")])
def test_a_photo_of_a_notice_is_read(fmt: str, suffix: str, parse: Parse, tmp_path: Path) -> None:
    path = tmp_path / f"notice.{suffix}"
    if fmt in ("jpeg", "webp"):
        typed_photo(NOTICE).save(path, quality=92)  # a phone camera's default (at 85 one space was lost: 15/16)
    else:
        typed_photo(NOTICE).save(path)
    assert detect(path) == Detected("text", fmt)
    t0 = time.perf_counter()
    result, work = parse(path)
    took = time.perf_counter() - t0
    content = (work / "content.md").read_text()
    print(f"\n{fmt}: {took:.2f} s, word recall {recall(content, NOTICE):.3f}: {content!r}")
    assert recall(content, NOTICE) >= 0.95, content
    assert result.page_count == 1 and result.note is None
    chunks = chunk(load_document(work / "parsed.json"))
    assert chunks and all(c.page_start == 1 for c in chunks)


def test_every_page_of_a_tiff_is_read_and_cited(parse: Parse, tmp_path: Path) -> None:
    path = tmp_path / "letter.tiff"
    first, second = typed_photo(NOTICE), typed_photo(SECOND_PAGE, seed=2)
    first.save(path, save_all=True, append_images=[second], compression="tiff_lzw")
    result, work = parse(path)
    assert result.page_count == 2
    doc = load_document(work / "parsed.json")
    by_page = {n: " ".join(t.text for t in doc.texts if t.prov[0].page_no == n) for n in (1, 2)}
    assert recall(by_page[1], NOTICE) >= 0.95 and recall(by_page[2], SECOND_PAGE) >= 0.95, by_page
    office = next(c for c in chunk(doc) if "housing office" in c.text)
    assert office.page_end == 2  # cited with the page it is on (short pages share a chunk: "pages 1-2")


def test_an_image_without_text_parses_to_nothing_and_says_so(parse: Parse, tmp_path: Path) -> None:
    path = tmp_path / "sky.png"
    Image.new("RGB", (800, 600), (120, 170, 230)).save(path)
    result, work = parse(path)
    assert result.page_count == 1 and result.note and "no text" in result.note, result
    assert chunk(load_document(work / "parsed.json")) == []
