"""OCR of a rendered PDF page with the RapidOCR models bundled in the `rapidocr` wheel (no download)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestflow.errors import PermanentError

if TYPE_CHECKING:
    from docling_core.types.doc import BoundingBox, Size
    from rapidocr import RapidOCR

# 3x = 216 dpi, docling's own OCR default: small print stays legible without making OCR much slower.
OCR_SCALE = 3.0
_RAPIDOCR_MODELS = ("PP-OCRv6_det_small.onnx", "ch_ppocr_mobile_v2.0_cls_mobile.onnx", "PP-OCRv6_rec_small.onnx")


def rapidocr_model_paths() -> tuple[Path, Path, Path]:
    """The det/cls/rec ONNX files inside the rapidocr wheel. Naming them explicitly keeps RapidOCR from
    resolving models by language, which for anything but its default would try to download."""
    import rapidocr

    models = Path(rapidocr.__file__).parent / "models"
    det, cls, rec = (models / name for name in _RAPIDOCR_MODELS)
    missing = [p.name for p in (det, cls, rec) if not p.is_file()]
    if missing:
        raise PermanentError(f"RapidOCR models missing from {models}: {', '.join(missing)}")
    return det, cls, rec


@lru_cache(maxsize=1)
def _ocr_engine() -> RapidOCR:
    from rapidocr import RapidOCR

    det, cls, rec = rapidocr_model_paths()
    return RapidOCR(
        params={
            "Det.model_path": str(det),
            "Cls.model_path": str(cls),
            "Rec.model_path": str(rec),
            "Global.log_level": "warning",
        }
    )


def warm() -> str:
    """Load the models and read one drawn line of text, as a warm parse child does before it takes a job: its first
    scanned page then costs only its own time (0.6 s less), and its memory is what it will stay at (in
    bench/soak_bench.py a child grew 405 -> 483 MiB on its first OCR'd page, after the soak's first 20 documents)."""
    import numpy as np
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (1800, 2400), "white")  # about a page at OCR_SCALE
    ImageDraw.Draw(page).text((150, 300), "Warm-up: 0123456789", fill="black", font_size=60)
    return " ".join(text for _quad, text in _recognise(np.asarray(page)))  # what it read, for the test that it ran


def _recognise(image: Any) -> list[tuple[list[list[float]], str]]:
    """The text lines of an RGB pixel array, top to bottom, each with its quadrilateral in pixels (top-left origin)."""
    # No text-line angle classifier: pages are rendered upright (photos are turned by their EXIF orientation),
    # and the classifier turned a clean, slightly tilted line of a photographed notice upside down ("while the
    # heating boiler is replaced..." read as "wWho b ch"); without it the line reads right.
    result = _ocr_engine()(image, use_cls=False)
    # The call is typed as returning any stage's output; with det+rec on it is the full result.
    boxes, texts = getattr(result, "boxes", None), getattr(result, "txts", None)
    if boxes is None or texts is None:
        return []
    return list(zip(boxes.tolist(), texts, strict=True))


def ocr_page(path: Path, page_no: int, size: Size) -> list[tuple[str, BoundingBox]]:
    """The text lines of one page, top to bottom, each with its box in PDF points (bottom-left origin)."""
    import numpy as np
    import pypdfium2 as pdfium
    from docling.utils.locks import pypdfium2_lock
    from docling_core.types.doc import BoundingBox, CoordOrigin

    with pypdfium2_lock:
        pdf = pdfium.PdfDocument(path)
        try:
            image = pdf[page_no - 1].render(scale=OCR_SCALE).to_pil().convert("RGB")
        finally:
            pdf.close()

    lines: list[tuple[str, BoundingBox]] = []
    for quad, text in _recognise(np.asarray(image)):
        if not text.strip():
            continue
        xs = [x / OCR_SCALE for x, _ in quad]
        ys = [y / OCR_SCALE for _, y in quad]
        bbox = BoundingBox(
            l=min(xs), r=max(xs), t=size.height - min(ys), b=size.height - max(ys), coord_origin=CoordOrigin.BOTTOMLEFT
        )
        lines.append((text, bbox))
    return lines
