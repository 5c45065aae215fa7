"""Image files in and out.

Reading keeps what the file holds: 8- or 16-bit samples, grayscale, alpha (palette and CMYK
become RGB), with the EXIF orientation applied. The ICC profile and EXIF block are kept (EXIF
with its orientation reset, since the pixels are now upright) and written back where the
output format can hold them: PNG, JPEG, WebP, 8-bit TIFF. Every failure raises ImageReadError
with a one-line reason; images larger than `max_pixels` are refused from the header, before
any decoding (decompression bombs). Writing is atomic: the bytes go to a hidden temporary file
beside the target: an unnamed O_TMPFILE on Linux, which a kill -9 cannot leave behind, else
`.<name>.<pid>-<random>.partial`, removed by the next run), then a rename, so an interrupted
run never leaves a half-written image.
"""
from __future__ import annotations

import os
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .formats import DEFAULT_MAX_PIXELS, WRITABLE_SUFFIXES, size_problem  # noqa: F401  (re-exported)
from .tiff_header import is_tiff, read_tiff_header

Image.MAX_IMAGE_PIXELS = None  # size limits are ours (max_pixels), checked from the header

MIN_SIDE = 8


class ImageReadError(ValueError):
    """The file cannot be used as an input image; str() is the one-line reason."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W, C): C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; uint8 or uint16
    path: Path
    icc: bytes | None = None  # ICC colour profile, carried to the output
    exif: bytes | None = None  # EXIF as TIFF bytes (no "Exif\0\0" header), orientation reset to 1
    moving: bool = False  # a frame of a clip or an animated image (`path` is the clip's)


@dataclass
class _Header:
    width: int
    height: int
    mode: str
    orientation: int = 1
    icc: bytes | None = None
    exif: bytes | None = None
    frames: int = 1  # pages of a TIFF, frames of an animation


def _header(path: Path) -> _Header:
    """Size, mode and metadata from the file header (no pixel decoding)."""
    with warnings.catch_warnings(), Image.open(path) as im:
        warnings.simplefilter("ignore")  # damaged tags: we report what matters ourselves
        w, h = im.size
        head = _Header(w, h, im.mode, icc=im.info.get("icc_profile") or None)
        try:
            head.frames = int(getattr(im, "n_frames", 1))
        except Exception:  # noqa: BLE001  (a damaged page chain: the first page is what decodes)
            head.frames = 1
        if "exif" in im.info:  # JPEG, PNG, WebP carry a separate EXIF block
            try:
                exif = im.getexif()
                head.orientation = int(exif.get(0x0112, 1))
                if 0x0112 in exif:
                    exif[0x0112] = 1
                raw = exif.tobytes()
                head.exif = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
            except Exception:  # noqa: BLE001  (broken EXIF: dropped, no rotation)
                head.orientation, head.exif = 1, None
    return head


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


def looks_truncated(data: bytes) -> bool:
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
        head = _header(path)
    except UnidentifiedImageError:
        head = _tiff_only_header(path)  # TIFFs Pillow has no mode for (float / int16 RGB, ...)
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        raise ImageReadError(f"cannot read header ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001  (hostile headers can raise anything inside the parser)
        raise ImageReadError(f"cannot read header ({type(exc).__name__})") from None
    w, h = head.width, head.height
    if w * h > max_pixels:
        raise ImageReadError(f"image too large ({w}x{h} = {w * h / 1e6:.3g} MP; limit {max_pixels / 1e6:.3g} MP)")
    if min(w, h) < min_side:
        raise ImageReadError(f"image too small ({w}x{h}; minimum {min_side}x{min_side})")
    if head.frames > 1:
        raise ImageReadError(f"{head.frames} frames (a multi-page TIFF or an animation); only single images are "
                             f"processed: split it into one file per frame first")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"cannot read ({exc.strerror})") from None
    if looks_truncated(data):
        raise ImageReadError("truncated file (image data ends early)")
    try:
        if head.mode == "CMYK":  # Pillow's CMYK -> RGB rounds better than OpenCV's (1 level)
            import io as _io

            with Image.open(_io.BytesIO(data)) as im:
                a = np.array(im.convert("RGB"))[:, :, ::-1]  # as BGR, like OpenCV (a writable copy: torch warns
                # about read-only arrays)
        elif data[:2] == b"\xff\xd8":
            a = _decode_jpeg(data)
        else:
            a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot decode ({_reason(exc)})") from None
    except cv2.error as exc:
        raise ImageReadError(f"cannot decode ({str(exc).strip().splitlines()[-1][:120]})") from None
    if a is None:
        raise ImageReadError("cannot decode (corrupt or unsupported image data)")
    a = supported_samples(a)
    if a.shape[:2] != (h, w):
        raise ImageReadError(f"decoded size {a.shape[1]}x{a.shape[0]} does not match the header's {w}x{h}")
    if a.ndim == 2:
        a = a[:, :, None]
    elif a.shape[2] == 3:
        a = a[:, :, ::-1]  # BGR -> RGB
    elif a.shape[2] == 4:
        a = a[:, :, [2, 1, 0, 3]]  # BGRA -> RGBA
        png_gray_alpha = data[:8] == b"\x89PNG\r\n\x1a\n" and data[25:26] == b"\x04"  # IHDR colour type 4
        if (head.mode in ("LA", "La") or png_gray_alpha) and _is_gray(a):
            a = a[:, :, [0, 3]]  # gray + alpha (OpenCV widens it to BGRA)
    return LoadedImage(apply_orientation(np.ascontiguousarray(a), head.orientation), path, head.icc, head.exif)


def _tiff_only_header(path: Path) -> _Header:
    """The header of a file Pillow does not recognise, when it is a TIFF (else: not an image)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ImageReadError(f"cannot read ({exc.strerror})") from None
    if not is_tiff(data):
        raise ImageReadError("not an image (unrecognised format)")
    try:
        tiff = read_tiff_header(data)
    except ValueError as exc:
        raise ImageReadError(f"cannot read header ({exc})") from None
    return _Header(tiff.width, tiff.height, "", frames=tiff.pages)


def supported_samples(a: np.ndarray) -> np.ndarray:
    """A decoded (H, W[, C]) array as uint8 or uint16 samples with 1-4 channels, or
    ImageReadError saying why it cannot be: integer samples keep their values when they fit in
    16 bits (int16 >= 0, uint32 <= 65535); float samples in [0, 1] become 16-bit."""
    channels = 1 if a.ndim == 2 else a.shape[2]
    if not 1 <= channels <= 4:
        raise ImageReadError(f"{channels} channels (supported: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)")
    if a.dtype in (np.uint8, np.uint16):
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageReadError(f"{a.dtype} samples include NaN or infinity")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise ImageReadError(f"{a.dtype} samples span [{lo:.4g}, {hi:.4g}]; float images must be in [0, 1] "
                                 f"(HDR and unscaled float images are not supported)")
        return (a.astype(np.float64) * 65535).round().astype(np.uint16)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise ImageReadError(f"{a.dtype} samples span [{lo}, {hi}]; integer samples must fit in 0-65535 "
                                 f"(16 bits)")
        return a.astype(np.uint8 if a.dtype.itemsize == 1 else np.uint16)
    raise ImageReadError(f"unsupported sample type {a.dtype}")


_STDERR = threading.Lock()


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    """OpenCV's JPEG decode with libjpeg's warnings caught (it prints them on file descriptor 2
    and decodes on): a file whose data ends early ("premature end"), even with an end marker
    appended, is refused; other warnings (e.g. extraneous bytes, common in camera files) are
    harmless and kept off the terminal. Decodes are serialised only while fd 2 is borrowed."""
    with _STDERR, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode("utf-8", "replace")
    other = [ln for ln in text.splitlines() if ln.strip() and "JPEG" not in ln]
    if other:  # another thread's output that landed here meanwhile: give it back
        print("\n".join(other), file=sys.stderr)
    if "premature end" in text.lower():
        raise ImageReadError("truncated JPEG (image data ends early; libjpeg: premature end of data)")
    return a


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _is_gray(a: np.ndarray) -> bool:
    return bool((a[:, :, 0] == a[:, :, 1]).all() and (a[:, :, 1] == a[:, :, 2]).all())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_gray_alpha(a: np.ndarray) -> bytes:
    """A gray+alpha PNG (colour type 4, 8 or 16 bit) from (H, W, 2) uint8/uint16."""
    h, w = a.shape[:2]
    depth = 16 if a.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(a.astype(">u2") if depth == 16 else a).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows.view(np.uint8).reshape(h, -1)], 1)  # filter 0 per row
    ihdr = struct.pack(">IIBBBBB", w, h, depth, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + _png_chunk(b"IEND", b""))


def _png_with_metadata(png: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (signature 8 bytes + IHDR chunk 25 bytes)."""
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif)
    return png[:33] + extra + png[33:]


def _jpeg_with_metadata(jpg: bytes, icc: bytes | None, exif: bytes | None) -> bytes:
    """Insert APP1 (Exif) and APP2 (ICC_PROFILE, split in 64 KB pieces) after SOI and APP0."""
    segments = b""
    if exif and len(exif) + 8 < 65536:
        body = b"Exif\x00\x00" + exif
        segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    if icc:
        pieces = [icc[i : i + 65519] for i in range(0, len(icc), 65519)]
        for n, piece in enumerate(pieces, 1):
            body = b"ICC_PROFILE\x00" + bytes([n, len(pieces)]) + piece
            segments += b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    pos = 2
    if jpg[2:4] == b"\xff\xe0":  # keep JFIF's APP0 first
        pos = 4 + struct.unpack(">H", jpg[4:6])[0]
    return jpg[:pos] + segments + jpg[pos:]


def _encode_with_pillow(a: np.ndarray, suffix: str, quality: int, icc: bytes | None, exif: bytes | None) -> bytes:
    """WebP and 8-bit TIFF through Pillow, which can embed ICC/EXIF there. a: (H, W, C) RGB(A)/gray uint8."""
    import io as _io

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[a.shape[2]]
    im = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, mode)
    if suffix == ".webp" and mode in ("L", "LA"):
        im = im.convert("RGBA" if mode == "LA" else "RGB")
    kw = {"icc_profile": icc} if icc else {}
    if exif:
        kw["exif"] = b"Exif\x00\x00" + exif
    buf = _io.BytesIO()
    if suffix == ".webp":
        im.save(buf, "WEBP", lossless=True, **kw)
    else:
        im.save(buf, "TIFF", compression="tiff_deflate", **kw)
    return buf.getvalue()


def encode_image(pixels: np.ndarray, suffix: str, jpeg_quality: int = 95, icc: bytes | None = None,
                 exif: bytes | None = None) -> bytes:
    """Encode an (H, W, C) RGB(A)/gray array in the format named by `suffix`, with metadata where it fits."""
    suffix = suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise ValueError(f"cannot write {suffix} files (writable: {', '.join(sorted(WRITABLE_SUFFIXES))})")
    too_big = size_problem(suffix, pixels.shape[1], pixels.shape[0])
    if too_big:  # before the encoder, which would print its own complaint on stderr
        raise ValueError(too_big)
    a = pixels
    if a.dtype == np.uint16 and suffix in (".jpg", ".jpeg", ".bmp", ".webp"):
        a = (a.astype(np.float32) / 257.0).round().astype(np.uint8)
    if a.shape[2] == 2 and suffix in (".jpg", ".jpeg", ".bmp"):
        a = a[:, :, :1]
    if a.shape[2] == 4 and suffix in (".jpg", ".jpeg"):
        a = a[:, :, :3]
    if suffix == ".png" and a.shape[2] == 2:  # OpenCV cannot write gray+alpha (it would make RGBA)
        return _png_with_metadata(_png_gray_alpha(a), icc, exif) if (icc or exif) else _png_gray_alpha(a)
    if suffix == ".webp" or (suffix in (".tif", ".tiff") and a.dtype == np.uint8 and (icc or exif)):
        return _encode_with_pillow(np.ascontiguousarray(a), suffix, jpeg_quality, icc, exif)
    if a.shape[2] == 3:
        a = a[:, :, ::-1]
    elif a.shape[2] == 4:
        a = a[:, :, [2, 1, 0, 3]]
    elif a.shape[2] == 2:  # gray + alpha: OpenCV writes it as BGRA
        g, al = a[:, :, 0], a[:, :, 1]
        a = np.stack([g, g, g, al], 2)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(a), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {a.shape} {a.dtype} image as {suffix}")
    data = buf.tobytes()
    if suffix == ".png" and (icc or exif):
        data = _png_with_metadata(data, icc, exif)
    elif suffix in (".jpg", ".jpeg") and (icc or exif):
        data = _jpeg_with_metadata(data, icc, exif)
    return data


def _write_unnamed(folder: Path, data: bytes) -> int | None:
    """Write into an unnamed file in `folder` (Linux O_TMPFILE): a kill -9 leaves nothing behind.
    Returns its descriptor, or None where the OS or file system cannot do it."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        fd = os.open(folder, flag | os.O_WRONLY, 0o644)
    except OSError:
        return None
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.close(fd)
        raise
    return fd


def partial_stem(name: str) -> str:
    """The part of an output's temporary name that comes from the output's own name: the name,
    or for a long one (up to the 255-byte limit) its first bytes and a checksum, so that
    `.<stem>.<pid>-<n>.partial` always fits a file name."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= 200:
        return name
    return raw[:160].decode("utf-8", "ignore") + f"~{zlib.crc32(raw):08x}"


def write_image(path: str | Path, pixels: np.ndarray, jpeg_quality: int = 95, icc: bytes | None = None,
                exif: bytes | None = None) -> None:
    """Encode and write atomically: the bytes go to an unnamed file (or a hidden temporary one
    where unnamed files are not supported), which is then given its name by a rename. An
    OSError names `path`, never the temporary file."""
    path = Path(path)
    data = encode_image(pixels, path.suffix, jpeg_quality, icc, exif)
    try:
        _write_bytes(path, data)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _write_unnamed(path.parent, data)
    stem = partial_stem(path.name)
    if fd is not None:
        tmp = path.parent / f".{stem}.{os.getpid()}-{fd}.partial"
        try:
            os.link(f"/proc/self/fd/{fd}", tmp, follow_symlinks=True)  # name it, then rename over
            os.replace(tmp, path)
            return
        except OSError:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.{os.getpid()}-", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path, names: set[str], max_age_s: float = 86400.0) -> int:
    """Delete temporary files a killed run left for these output names
    (`.<name>.<pid>-<random>.partial`): those whose process is gone, or older than `max_age_s`
    (a writer on another machine sharing the folder). A live writer's file is left alone."""
    import time

    removed = 0
    stems = {partial_stem(n) for n in names}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for e in entries:
        n = e.name
        if not (n.startswith(".") and n.endswith(".partial")):
            continue
        target, _, token = n[1 : -len(".partial")].rpartition(".")
        if target not in stems:
            continue
        pid = token.split("-", 1)[0]
        try:
            stale = (pid.isdigit() and not _alive(int(pid))) or time.time() - e.stat().st_mtime > max_age_s
            if stale:
                os.unlink(e.path)
                removed += 1
        except OSError:
            pass
    return removed
