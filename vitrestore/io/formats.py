"""The image file kinds the suite reads and writes, and the size guard: plain constants, importable
without numpy, OpenCV or torch (the CLI builds its options from them before any heavy import)."""
from __future__ import annotations

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}  # what folder inputs may hold
WRITABLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "tif": ".tif", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}
DEFAULT_MAX_PIXELS = 300_000_000  # decompression-bomb guard (--max-megapixels)

# the largest side each format can hold (libjpeg's JPEG_MAX_DIMENSION, WebP's 14-bit sizes); others: no limit here
MAX_SIDE = {".jpg": 65_500, ".jpeg": 65_500, ".webp": 16_383}


def size_problem(suffix: str, width: int, height: int) -> str | None:
    """Why an image of this size cannot be written in this format, or None."""
    limit = MAX_SIDE.get(suffix.lower())
    if limit is None or max(width, height) <= limit:
        return None
    name = suffix.lower().lstrip(".").replace("jpeg", "jpg").upper()
    return (f"the output would be {width}x{height} px, larger than {name} can hold ({limit:,} px a side); "
            f"use --format png or tif")
