"""Image files in and out.

Reading keeps what the file holds: 8- or 16-bit samples, grayscale, alpha, with the EXIF
orientation applied. Every failure raises ImageReadError with a one-line reason. Writing is
atomic: the bytes go to a hidden temporary file beside the target, then a rename, so an
interrupted run never leaves a half-written image.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = None  # size limits are ours (max_pixels), checked from the header

MIN_SIDE = 8
DEFAULT_MAX_PIXELS = 300_000_000
WRITABLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


class ImageReadError(ValueError):
    """The file cannot be used as an input image; str() is the one-line reason."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, C): C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; uint8 or uint16
    path: Path

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8


def _orientation(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001  (no or broken EXIF: no rotation)
        return 1


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1-8) to an (H, W, C) array."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.swapaxes(x, 0, 1)[:, ::-1],
        7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1],
        8: lambda x: np.swapaxes(x, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops[orientation](a)) if orientation in ops else a


def _looks_truncated(data: bytes) -> bool:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    if data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in data[-4096:]
    return False


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = MIN_SIDE) -> LoadedImage:
    """Read an image file; raises ImageReadError('reason') for anything unusable."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError("no such file")
    if path.is_dir():
        raise ImageReadError("is a folder")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"cannot access ({exc.strerror})") from None
    if size == 0:
        raise ImageReadError("empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise ImageReadError("not an image (unrecognised format)") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read ({exc})") from None
    if w * h > max_pixels:
        raise ImageReadError(f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP; limit {max_pixels / 1e6:.0f} MP)")
    if min(w, h) < min_side:
        raise ImageReadError(f"image too small ({w}x{h}; minimum {min_side}x{min_side})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"cannot read ({exc.strerror})") from None
    if _looks_truncated(data):
        raise ImageReadError("truncated file (image data ends early)")
    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise ImageReadError("cannot decode (corrupt or unsupported image data)")
    if a.dtype not in (np.uint8, np.uint16):
        if a.dtype == np.float32 or a.dtype == np.float64:
            a = (np.clip(a, 0, 1) * 65535).round().astype(np.uint16)
        else:
            raise ImageReadError(f"unsupported sample type {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    elif a.shape[2] == 3:
        a = a[:, :, ::-1]  # BGR -> RGB
    elif a.shape[2] == 4:
        a = a[:, :, [2, 1, 0, 3]]  # BGRA -> RGBA
    return LoadedImage(apply_orientation(np.ascontiguousarray(a), _orientation(path)), path)


def encode_image(pixels: np.ndarray, suffix: str, jpeg_quality: int = 95) -> bytes:
    """Encode an (H, W, C) RGB(A)/gray array in the format named by `suffix`."""
    suffix = suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise ValueError(f"cannot write {suffix} files (writable: {', '.join(sorted(WRITABLE_SUFFIXES))})")
    a = pixels
    if a.dtype == np.uint16 and suffix in (".jpg", ".jpeg", ".bmp", ".webp"):
        a = (a.astype(np.float32) / 257.0).round().astype(np.uint8)
    if a.shape[2] == 2 and suffix in (".jpg", ".jpeg", ".bmp"):
        a = a[:, :, :1]
    if a.shape[2] == 4 and suffix in (".jpg", ".jpeg"):
        a = a[:, :, :3]
    if a.shape[2] == 3:
        a = a[:, :, ::-1]
    elif a.shape[2] == 4:
        a = a[:, :, [2, 1, 0, 3]]
    elif a.shape[2] == 2:  # gray + alpha: OpenCV writes it as BGRA
        g, al = a[:, :, 0], a[:, :, 1]
        a = np.stack([g, g, g, al], 2)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    if suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 100]
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(a), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {a.shape} {a.dtype} image as {suffix}")
    return buf.tobytes()


def write_image(path: str | Path, pixels: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode and write atomically: temporary file in the same folder, fsync, rename."""
    path = Path(path)
    data = encode_image(pixels, path.suffix, jpeg_quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
