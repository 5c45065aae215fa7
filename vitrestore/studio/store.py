"""The studio's private upload folder and the images in it (`UploadStore`): uploads streamed in
and checked by the CLI's reader, job results added, the whole bounded in bytes and images (the
least recently used that no job needs go first); and the removal of folders left by dead studios."""
from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .clips import ClipFacts, ClipTooLarge, decode_frame, read_clip
from .errors import ApiError, _shown

MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"),
         (b"BM", ".bmp"))
SNIFF_BYTES = 64  # read of an upload's start: the magic bytes, and where a Matroska file says it is WebM
# ISO media (MP4/MOV) starts with a box: "ftyp" and its brand; an old QuickTime file with another box
QUICKTIME_BOXES = (b"moov", b"mdat", b"wide", b"free", b"skip")
STILL_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")  # HEIF/AVIF photos: ISO media, no clip
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".tif": "image/tiff", ".bmp": "image/bmp",
                 ".webp": "image/webp", ".mp4": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
                 ".webm": "video/webm", ".avi": "video/x-msvideo"}
PREFIX = "vitrestore-studio-"  # the private folders' names (each holds PID_FILE: whose folder it is)
PID_FILE = "studio.pid"


def sniff_suffix(head: bytes) -> str | None:
    """The image or video format from a file's first SNIFF_BYTES bytes ('.png', '.mp4', ...), or None."""
    for magic, suffix in MAGIC:
        if head.startswith(magic):
            return suffix
    if head[:4] == b"RIFF":
        return {b"WEBP": ".webp", b"AVI ": ".avi"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return None if brand in STILL_BRANDS else ".mov" if brand == b"qt  " else ".mp4"
    if head[4:8] in QUICKTIME_BOXES:
        return ".mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM where its DocType says so
        return ".webm" if b"webm" in head else ".mkv"
    return None


def safe_stem(name: str) -> str:
    """A display/download stem from a client's file name: no folders, no odd characters."""
    stem = Path(name.replace("\\", "/").split("/")[-1]).stem
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:80]
    return stem or "image"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def stale_folders(root: Path) -> list[Path]:
    """Private folders under `root` left by studios that died without cleaning up (SIGKILL, a
    crash): ours only, recognised by the name prefix, our uid, and a pid file whose process is
    gone. Anything else (no pid file, a live process, a link) is left alone."""
    if os.name != "posix":  # os.kill(pid, 0) is no liveness test elsewhere
        return []
    found = []
    for path in root.glob(PREFIX + "*"):
        pid_file = path / PID_FILE
        try:
            if path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
            if pid_file.is_symlink() or not pid_file.is_file():
                continue
            with open(pid_file, "rb") as f:
                pid = int(f.read(32).decode("ascii").strip())
        except (OSError, ValueError):
            continue
        if pid > 0 and pid != os.getpid() and not _alive(pid):
            found.append(path)
    return found


def eight_bit(a: Any, rgb: bool = False) -> Any:
    """(H, W, C) pixels as 8-bit for a browser (16-bit scaled down); `rgb`: gray repeated, alpha dropped."""
    if a.dtype.itemsize == 2:
        a = (a.astype("float32") / 257).round().astype("uint8")
    if rgb:
        a = a[:, :, :3] if a.shape[2] >= 3 else a[:, :, :1].repeat(3, axis=2)
    return a


@dataclass
class Stored:
    path: Path  # inside the studio's private folder
    stem: str  # the root upload's stem: results are named <stem>_<suffix><ext>, as the CLI names them
    suffix: str  # the format (and the results' format)
    width: int
    height: int
    channels: int
    bits: int
    size: int = 0  # bytes on disk
    used: float = field(default_factory=time.monotonic)  # last asked for: the least recently used go first
    clip: ClipFacts | None = None  # a video clip's frames (width and height are a frame's); None: a still image

    def public(self, image_id: str) -> dict[str, Any]:
        return {"id": image_id, "name": f"{self.stem}{self.suffix}", "width": self.width, "height": self.height,
                "channels": self.channels, "bits": self.bits, "file": f"/api/images/{image_id}/file",
                "preview": f"/api/images/{image_id}/preview",
                "clip": self.clip.public(image_id) if self.clip is not None else None}


class UploadStore:
    """The private folder and its images, by id: at most `max_store_bytes` and `max_images`."""

    def __init__(self, in_use: Callable[[], set[str]], max_pixels: int, max_upload_bytes: int,
                 max_store_bytes: int, max_images: int, temp_root: Path | None = None):
        """`in_use()`: the ids queued or running jobs read (never dropped); `temp_root`: where the
        folder is made (the system's). Earlier studios' folders left there by a crash go first."""
        if max_store_bytes < max_upload_bytes:
            raise ValueError(f"the upload store ({max_store_bytes / 2**20:.0f} MB) must hold at least one "
                             f"upload ({max_upload_bytes / 2**20:.0f} MB)")
        root = Path(temp_root or tempfile.gettempdir())
        for old in stale_folders(root):
            shutil.rmtree(old, ignore_errors=True)
        self.folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
        (self.folder / PID_FILE).write_text(f"{os.getpid()}\n")
        self._atexit = lambda folder=self.folder: shutil.rmtree(folder, ignore_errors=True)
        atexit.register(self._atexit)  # a stop that skips close() still removes the folder
        self.max_pixels, self.max_upload_bytes = max_pixels, max_upload_bytes
        self.max_store_bytes, self.max_images = max_store_bytes, max_images
        self.images: dict[str, Stored] = {}
        self.lock = threading.Lock()  # the images dict, and the room reserved for uploads under way
        self._reserved, self._pending = 0, 0
        self._decode = threading.Semaphore(2)  # at most two uploads decoded at once: memory stays bounded
        self._in_use = in_use

    def close(self) -> None:
        """Remove the folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self._atexit)

    def add_image(self, read_chunk, length: int, name: str, stem: str | None = None) -> str:
        """Stream an upload of `length` bytes to the private folder, check it with the CLI's
        reader; its id. Raises ApiError (4xx) for anything that is not a usable image."""
        if length <= 0:
            raise ApiError(400, f"{safe_stem(name)}: empty upload")
        if length > self.max_upload_bytes:
            raise ApiError(413, f"{safe_stem(name)}: {length / 2**20:.0f} MB is over the upload limit of "
                                f"{self.max_upload_bytes / 2**20:.0f} MB")
        with self.lock:
            self._make_room(length)
            self._reserved += length
            self._pending += 1
        try:
            return self._receive(read_chunk, length, name, stem)
        finally:
            with self.lock:
                self._reserved -= length
                self._pending -= 1

    def _receive(self, read_chunk, length: int, name: str, stem: str | None) -> str:
        from ..io.images import ImageReadError, read_image
        from ..io.video import VIDEO_SUFFIXES

        image_id = uuid.uuid4().hex
        tmp = self.folder / f"{image_id}.upload"
        path = tmp
        try:
            with open(tmp, "wb") as f:
                left = length
                while left:
                    chunk = read_chunk(min(left, 1 << 20))
                    if not chunk:
                        break
                    f.write(chunk)
                    left -= len(chunk)
            if left:
                raise ApiError(400, f"{safe_stem(name)}: the upload ended early ({length - left} of {length} bytes)",
                               log=True)
            with open(tmp, "rb") as f:
                head = f.read(SNIFF_BYTES)  # the format's magic bytes (not the whole upload into memory)
            suffix = sniff_suffix(head)
            if suffix is None:
                raise ApiError(400, f"{safe_stem(name)}: not an image (PNG, JPEG, TIFF, WebP or BMP) nor a video "
                                    f"clip ({', '.join(VIDEO_SUFFIXES)})")
            path = tmp.with_suffix(suffix)
            tmp.rename(path)
            with self._decode:
                if suffix in VIDEO_SUFFIXES:
                    stored = self._clip(path, name, suffix, stem, length)
                else:
                    try:
                        img = read_image(path, max_pixels=self.max_pixels)
                    except ImageReadError as exc:
                        text = str(exc).replace(str(path), "").lstrip(": ")
                        raise ApiError(413 if "megapixel" in text or "too large" in text else 400,
                                       f"{safe_stem(name)}{suffix}: {text}") from None
                    h, w, c = img.pixels.shape
                    stored = Stored(path, stem or safe_stem(name), suffix, w, h, c,
                                    16 if img.pixels.dtype.itemsize == 2 else 8, length)
        except BaseException:  # a bad image, a client gone or stalled, a stop: no partial file stays
            path.unlink(missing_ok=True)
            raise
        with self.lock:
            self.images[image_id] = stored
        return image_id

    def _clip(self, path: Path, name: str, suffix: str, stem: str | None, length: int) -> Stored:
        """A clip upload at `path`, checked (clips.read_clip: the frame limit, every packet, the
        first and last frames): its Stored. ApiError 413 / 400 in one line naming the file."""
        from ..io.video import VideoError

        try:
            info, facts = read_clip(path, self.max_pixels)
        except ClipTooLarge as exc:
            raise ApiError(413, f"{safe_stem(name)}{suffix}: {exc}") from None
        except VideoError as exc:
            raise ApiError(400, f"{safe_stem(name)}{suffix}: {exc}") from None
        return Stored(path, stem or safe_stem(name), suffix, info.width, info.height, 3, 8, length, clip=facts)

    def _make_room(self, incoming: int, keep: str | None = None) -> None:
        """Under `lock`: drop the least recently used images that no queued or running job
        needs until `incoming` more bytes (and one more image) fit; ApiError 507 when they cannot."""
        stored = sum(s.size for s in self.images.values())

        def fits() -> bool:
            return (stored + self._reserved + incoming <= self.max_store_bytes
                    and len(self.images) + self._pending + (incoming > 0) <= self.max_images)

        busy = self._in_use() | {keep}
        for image_id, _ in sorted(self.images.items(), key=lambda kv: kv[1].used):
            if fits():
                return
            if image_id not in busy:
                dropped = self.images.pop(image_id)
                dropped.path.unlink(missing_ok=True)
                stored -= dropped.size
        if not fits():
            raise ApiError(507, f"the upload store is full ({self.max_store_bytes / 2**20:.0f} MB, "
                                f"{self.max_images} images, all needed by queued jobs); try again when they have run")

    def image(self, image_id: Any) -> Stored:
        stored = self.images.get(image_id) if isinstance(image_id, str) else None
        if stored is None:
            raise ApiError(404, f"no image {_shown(image_id)} (never uploaded, or dropped: the least recently "
                                f"used go when the upload store is full)")
        stored.used = time.monotonic()
        return stored

    def preview(self, image_id: str) -> bytes:
        """The image as an 8-bit PNG a browser can show (TIFF, 16-bit); a clip's first frame."""
        from ..io.images import ImageReadError, encode_image, read_image

        if self.image(image_id).clip is not None:
            return self.frame(image_id, 0)[0]
        try:
            img = read_image(self.image(image_id).path, max_pixels=self.max_pixels)
        except ImageReadError:  # dropped from the store meanwhile
            raise ApiError(404, f"no image {_shown(image_id)} (dropped: the upload store was full)") from None
        return encode_image(eight_bit(img.pixels), ".png")

    def frame(self, image_id: str, n: int) -> tuple[bytes, float]:
        """(frame `n` of a stored clip as a PNG, its time in seconds from the first frame): decoded
        on demand (clips.decode_frame: a seek, one group of pictures), two at a time as uploads
        are. ApiError 404 where the image is no clip or has no such frame."""
        from ..io.images import encode_image
        from ..io.video import VideoError

        stored = self.image(image_id)
        if stored.clip is None:
            raise ApiError(404, f"{stored.stem}{stored.suffix} is an image, not a clip: it has no frames")
        if not 0 <= n < stored.clip.frames:
            raise ApiError(404, f"no frame {n} in {stored.stem}{stored.suffix} (frames 0 to {stored.clip.frames - 1})")
        try:
            with self._decode:
                rgb = decode_frame(stored.path, stored.clip, n)  # (H, W, 3) uint8
        except FileNotFoundError:  # dropped from the store meanwhile
            raise ApiError(404, f"no image {_shown(image_id)} (dropped: the upload store was full)") from None
        except VideoError as exc:
            raise ApiError(400, f"{stored.stem}{stored.suffix}: {exc}") from None
        return encode_image(rgb, ".png"), stored.clip.time(n)

    def scratch(self, job_id: str) -> Path:
        """A new empty folder in the private folder for a job's files under way (a clip's pieces):
        the job removes it, and close() with everything else."""
        folder = self.folder / f"job-{job_id}"
        folder.mkdir()
        return folder

    def add_clip_result(self, path: Path, src: Stored, stem: str) -> str:
        """A job's finished clip at `path` (in its scratch folder), moved in as a new image; its id."""
        from ..io.video import VideoError

        result_id = uuid.uuid4().hex
        target = self.folder / f"{result_id}{src.suffix}"
        try:
            info, facts = read_clip(path, 2**62)  # the result's own frame index (an upscale's frames are larger)
        except VideoError as exc:
            raise ValueError(f"the result clip cannot be read back: {exc}") from None
        os.replace(path, target)
        with self.lock:
            self.images[result_id] = Stored(target, stem, src.suffix, info.width, info.height, 3, 8,
                                            target.stat().st_size, clip=facts)
            try:
                self._make_room(0, keep=result_id)
            except ApiError:  # over the bound until the queued jobs have run: they need their images
                pass
        return result_id

    def add_result(self, data: bytes, src: Stored, stem: str, shape: tuple[int, ...]) -> str:
        """A job's result, encoded in its source's format (`data`), as a new image; its id."""
        result_id = uuid.uuid4().hex
        path = self.folder / f"{result_id}{src.suffix}"
        path.write_bytes(data)
        h, w, c = shape
        with self.lock:
            self.images[result_id] = Stored(path, stem, src.suffix, w, h, c, src.bits, path.stat().st_size)
            try:
                self._make_room(0, keep=result_id)
            except ApiError:  # over the bound until the queued jobs have run: they need their images
                pass
        return result_id
