"""The image file kinds the suite reads and writes, and the size guard: plain constants, importable
without numpy, OpenCV or torch (the CLI builds its options from them before any heavy import)."""
from __future__ import annotations

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}  # what folder inputs may hold
WRITABLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "tif": ".tif", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}
DEFAULT_MAX_PIXELS = 300_000_000  # decompression-bomb guard (--max-megapixels)
