"""Photos and scans of pages (PNG, JPEG, TIFF, BMP, WEBP) as a PDF of one page per image frame, which the native
PDF path then OCRs as it OCRs a scanned PDF (ingestflow/parsing/native_pdf.py): one OCR path, the same page
numbers (a multi-page TIFF cites its pages), the same notes when a page holds no text."""

from __future__ import annotations

from pathlib import Path

from ingestflow.errors import CorruptInput, LimitExceeded
from ingestflow.parsing.limits import setting_name
from ingestflow.parsing.ocr import OCR_SCALE

# The PDF page is sized so that OCR, rendering it at OCR_SCALE, reads the image at its own pixels: at 72 dpi a
# 4000 x 3000 phone photo would be rendered three times larger (a 324 MB bitmap) for no gain.
_DPI = 72.0 * OCR_SCALE
# PIL refuses an image over twice this many pixels as a decompression bomb; the warning below it is an error here.
_MAX_PIXELS = 100_000_000


def image_to_pdf(image_path: Path, pdf_path: Path, max_pages: int) -> int:
    """Write every frame of the image as a page of a PDF; the number of pages. A phone photo is turned upright
    by its EXIF orientation first. Raises CorruptInput for an image PIL cannot read, LimitExceeded past
    `max_pages` frames or a bitmap too large to OCR."""
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(image_path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > max_pages:
                raise LimitExceeded(f"the image has {frames} pages, over the limit of {max_pages} "
                                    f"({setting_name('parse_max_pages')})")
            pages = []
            for frame in ImageSequence.Iterator(image):
                if frame.width * frame.height > _MAX_PIXELS:
                    raise LimitExceeded(f"an image of {frame.width} x {frame.height} pixels is too large to OCR "
                                        f"(at most {_MAX_PIXELS // 1_000_000} megapixels)")
                upright = ImageOps.exif_transpose(frame) or frame
                pages.append(upright.convert("RGB"))
            pages[0].save(pdf_path, "PDF", resolution=_DPI, save_all=True, append_images=pages[1:])
            return len(pages)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise CorruptInput(f"the image could not be read: {exc}") from exc
