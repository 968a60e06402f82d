"""Benchmark: pages per second for photos and scans of pages (issue 23), the parse stage against the raw OCR model.

    .venv/bin/python bench/image_bench.py [--pages 6] [--repeat 3]

A multi-page TIFF of typed pages (the test suite's phone-photo notice, tests/test_images.py) goes through
tasks.parse.parse_document as the stage runs it (the warm parse child: the image written as a PDF page per frame,
the native PDF path, OCR of every page, docling's document), against RapidOCR alone on the same frames in this
process with the engine warm. Both are timed once untimed first, then the median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    from PIL import Image, ImageSequence

    from ingestflow.parsing.ocr import _ocr_engine
    from ingestflow.refs import DocumentRef
    from tasks.parse import parse_document
    from tests.test_images import NOTICE, typed_photo

    work = Path(tempfile.mkdtemp(prefix="ingestflow-image-bench-"))
    tiff = work / "scan.tiff"
    frames = [typed_photo(NOTICE, seed=i) for i in range(args.pages)]
    frames[0].save(tiff, save_all=True, append_images=frames[1:], compression="tiff_lzw")
    print(f"{args.pages} pages of {frames[0].width} x {frames[0].height} pixels, median of {args.repeat}")

    def stage() -> None:
        out = work / f"run-{time.monotonic_ns()}"
        result = parse_document(DocumentRef("d", None, "bench", "text", "tiff", tiff.name, None, tiff, out))
        assert result.page_count == args.pages, result

    engine = _ocr_engine()

    def raw() -> None:
        with Image.open(tiff) as image:
            for frame in ImageSequence.Iterator(image):
                engine(np.asarray(frame.convert("RGB")), use_cls=False)

    timings: dict[str, float] = {}
    for name, run in (("raw RapidOCR", raw), ("parse stage", stage)):
        run()  # warm: the engine, the parse child, docling's imports
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        timings[name] = statistics.median(times)
    for name, took in timings.items():
        print(f"{name:<14} {took:6.2f} s  {args.pages / took:5.2f} pages/s")
    print(f"parse stage / raw OCR: {timings['parse stage'] / timings['raw RapidOCR']:.2f}x")


if __name__ == "__main__":
    main()
