"""`vitrestore studio`: a local web page for every task, served by the standard library's
threading HTTP server (no web framework: nothing to install, nothing fetched, one thread per
request, model work on the job queue's worker thread; docs/studio.md has the API).

The task models come in from the application layer (cli.py hands over `vitrestore.tasks`; the
core never imports a task): the same `load_model`, tiling and image reader as the CLI.

Safety: no client input reaches the file system. Job options are values from a closed set or a
checked range (a model is chosen by a name the studio itself lists, loaded from the package or
the --models folder, never from a path a client spells). Uploads are streamed to a private
temporary folder under a random id, decoded by the CLI's hardened reader with its megapixel
limit; the folder holds at most `max_store_bytes` (the least recently used images no job needs
go first) and is removed on exit; a new studio removes the folders of dead earlier ones. Requests
to a loopback server must name it in their Host header (no DNS rebinding); requests from another
site (a foreign Origin) are refused, JSON is required where JSON is expected, and no site may
frame the page (X-Frame-Options, CSP). A server bound beyond loopback requires a token in the
X-Vitrestore-Token header. Idle connections are closed after `idle_timeout` seconds.
"""
from __future__ import annotations

import atexit
import hmac
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote, urlparse

from ..io.formats import DEFAULT_MAX_PIXELS
from .jobs import Job, JobQueue, QueueFull

MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"),
         (b"BM", ".bmp"))
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".tif": "image/tiff", ".bmp": "image/bmp",
                 ".webp": "image/webp"}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
TASKS = ("denoise", "upscale", "inpaint", "stylize", "restore")
OPTIONS = {"denoise": ("sigma",), "upscale": ("scale", "kind"), "inpaint": ("mask", "texture"),
           "stylize": ("style", "strength"), "restore": ("model",)}  # every key a job's options may have
JOB_KEYS = ("task", "image", "options")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PREFIX = "vitrestore-studio-"  # the private folders' names (each holds PID_FILE: whose folder it is)
PID_FILE = "studio.pid"
TOKEN_ENV = "VITRESTORE_STUDIO_TOKEN"
MAX_JSON_BYTES = 64 * 1024  # a job is a few hundred bytes
UPLOAD_TYPES = ("application/octet-stream", "image/")  # a form (text/plain, multipart) is not an upload
# sent with every answer: no site may frame the page or load its images; the page runs only its own files
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, log: bool = False):
        super().__init__(message)
        self.status = status
        self.log = log  # also one line in the studio's log (a client that went away mid-upload)


def _shown(value: Any, limit: int = 40) -> str:
    """A client's value as JSON, shortened: error messages never echo a whole body back."""
    text = json.dumps(value[: 2 * limit] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sniff_suffix(head: bytes) -> str | None:
    """The image format from a file's first bytes ('.png', ...), or None."""
    for magic, suffix in MAGIC:
        if head.startswith(magic):
            return suffix
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return None


def safe_stem(name: str) -> str:
    """A display/download stem from a client's file name: no folders, no odd characters."""
    stem = Path(name.replace("\\", "/").split("/")[-1]).stem
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:80]
    return stem or "image"


def content_disposition(name: str) -> str:
    """An attachment header for any file name: HTTP headers are Latin-1, a client's name may be in
    any script, so an ASCII `filename` for old clients and the UTF-8 `filename*` (RFC 5987/6266)."""
    stem, _, ext = name.rpartition(".")
    fallback = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "image"
    return f"attachment; filename=\"{fallback}.{ext}\"; filename*=UTF-8''{quote(name, safe='')}"


def check_token(token: str, what: str = "the token") -> str:
    if not re.fullmatch(r"[!-~]+", token):
        raise ValueError(f"{what} must be printable ASCII without spaces (it travels in an HTTP header)")
    return token


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The studio's token: `token` (--token or $VITRESTORE_STUDIO_TOKEN), else the first line of
    `token_file`; ValueError in one line naming the file."""
    if token_file is None:
        return check_token(token) if token else None
    if token:
        raise ValueError("give the token once: --token-file, or --token / $" + TOKEN_ENV)
    try:
        with open(token_file, "rb") as f:
            raw = f.read(4097)
    except OSError as exc:
        raise ValueError(f"{token_file}: --token-file cannot be read ({exc.strerror or exc})") from None
    lines = raw.decode("latin-1").strip().splitlines()
    if len(raw) > 4096 or not lines or not lines[0].strip():
        raise ValueError(f"{token_file}: --token-file " + ("is over 4 kB" if len(raw) > 4096 else "is empty"))
    return check_token(lines[0].strip(), f"{token_file}: the token")


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

    def public(self, image_id: str) -> dict[str, Any]:
        return {"id": image_id, "name": f"{self.stem}{self.suffix}", "width": self.width, "height": self.height,
                "channels": self.channels, "bits": self.bits, "file": f"/api/images/{image_id}/file",
                "preview": f"/api/images/{image_id}/preview"}


def _number(task: str, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"{task}: option {key!r} must be a number from {low:g} to {high:g}, got {_shown(value)}")
    return float(value)


def _choice(task: str, key: str, value: Any, allowed: tuple) -> Any:
    if type(value) is not type(allowed[0]) or value not in allowed:  # noqa: E721  (True is not 1, "2" is not 2)
        raise ApiError(400, f"{task}: option {key!r} must be one of {', '.join(map(str, allowed))}, "
                            f"got {_shown(value)}")
    return value


def _flag(task: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{task}: option {key!r} must be true or false, got {_shown(value)}")
    return value


class Studio:
    """The state behind the HTTP API: uploaded and result images, loaded models, the job queue."""

    def __init__(self, tasks: Any, device: str = "auto", models_dir: Path | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_upload_bytes: int = 256 * 2**20, queue_size: int = 8,
                 tile: int = 512, backend: str | None = None, max_store_bytes: int = 2 * 2**30,
                 max_images: int = 1000, temp_root: Path | None = None):
        """`tasks`: the task package (load_model, inpaint_masks.mask_from_pixels). `max_store_bytes`
        and `max_images` bound the private folder; `temp_root`: where it is made (the system's)."""
        from ..weights import shipped_models

        if max_store_bytes < max_upload_bytes:
            raise ValueError(f"the upload store ({max_store_bytes / 2**20:.0f} MB) must hold at least one "
                             f"upload ({max_upload_bytes / 2**20:.0f} MB)")
        self.tasks = tasks
        root = Path(temp_root or tempfile.gettempdir())
        for old in stale_folders(root):
            shutil.rmtree(old, ignore_errors=True)
        self.folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
        (self.folder / PID_FILE).write_text(f"{os.getpid()}\n")
        self._atexit = lambda folder=self.folder: shutil.rmtree(folder, ignore_errors=True)
        atexit.register(self._atexit)  # a stop that skips close() still removes the folder
        self.device, self.models_dir, self.tile, self.backend = device, models_dir, tile, backend
        self.max_pixels, self.max_upload_bytes = max_pixels, max_upload_bytes
        self.max_store_bytes, self.max_images = max_store_bytes, max_images
        self.styles = [n[len("style-"):] for n in shipped_models() if n.startswith("style-")]
        self.images: dict[str, Stored] = {}
        self._store_lock = threading.Lock()  # the images dict, and the room reserved for uploads under way
        self._reserved, self._pending = 0, 0
        self._models: dict[tuple[str, int], Any] = {}
        self._models_lock = threading.Lock()  # loaded models, kept: one load of each
        self._thumbs: dict[str, bytes] = {}
        self.device_lock = threading.Lock()  # one model run at a time: jobs, thumbnails
        self._decode = threading.Semaphore(2)  # at most two uploads decoded at once: memory stays bounded
        self._closed: bool | None = None
        self.jobs = JobQueue(self._run, size=queue_size)

    def close(self, timeout: float = 60) -> bool:
        """Cancel every job, wait for the worker and any model call on a request thread (at most
        `timeout` s), remove the folder. Whether everything stopped: if not, a thread is still in a
        model call and the process must end with os._exit (a normal exit would abort)."""
        if self._closed is not None:
            return self._closed
        stopped = self.jobs.stop(timeout)
        # held from here on: no model call or load starts, none is under way
        held = stopped and self.device_lock.acquire(timeout=timeout) and self._models_lock.acquire(timeout=timeout)
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self._atexit)
        self._closed = stopped and held
        return self._closed

    # --- images ------------------------------------------------------------------------------
    def add_image(self, read_chunk, length: int, name: str, stem: str | None = None) -> str:
        """Stream an upload of `length` bytes to the private folder, check it with the CLI's
        reader; its id. Raises ApiError (4xx) for anything that is not a usable image."""
        if length <= 0:
            raise ApiError(400, f"{safe_stem(name)}: empty upload")
        if length > self.max_upload_bytes:
            raise ApiError(413, f"{safe_stem(name)}: {length / 2**20:.0f} MB is over the upload limit of "
                                f"{self.max_upload_bytes / 2**20:.0f} MB")
        with self._store_lock:
            self._make_room(length)
            self._reserved += length
            self._pending += 1
        try:
            return self._receive(read_chunk, length, name, stem)
        finally:
            with self._store_lock:
                self._reserved -= length
                self._pending -= 1

    def _receive(self, read_chunk, length: int, name: str, stem: str | None) -> str:
        from ..io.images import ImageReadError, read_image

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
                head = f.read(16)  # the format's magic bytes (not the whole upload into memory)
            suffix = sniff_suffix(head)
            if suffix is None:
                raise ApiError(400, f"{safe_stem(name)}: not an image (PNG, JPEG, TIFF, WebP or BMP)")
            path = tmp.with_suffix(suffix)
            tmp.rename(path)
            with self._decode:
                try:
                    img = read_image(path, max_pixels=self.max_pixels)
                except ImageReadError as exc:
                    text = str(exc).replace(str(path), "").lstrip(": ")
                    raise ApiError(413 if "megapixel" in text or "too large" in text else 400,
                                   f"{safe_stem(name)}{suffix}: {text}") from None
        except BaseException:  # a bad image, a client gone or stalled, a stop: no partial file stays
            path.unlink(missing_ok=True)
            raise
        h, w, c = img.pixels.shape
        with self._store_lock:
            self.images[image_id] = Stored(path, stem or safe_stem(name), suffix, w, h, c,
                                           16 if img.pixels.dtype.itemsize == 2 else 8, length)
        return image_id

    def _in_use(self) -> set[str]:
        """The ids a queued or running job reads (its image, an inpaint mask)."""
        ids = set()
        for job in list(self.jobs.jobs.values()):
            if job.active:
                ids.update(v for v in (job.image, job.options.get("mask")) if isinstance(v, str))
        return ids

    def _make_room(self, incoming: int, keep: str | None = None) -> None:
        """Under _store_lock: drop the least recently used images that no queued or running job
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
        """The image as an 8-bit PNG a browser can show (TIFF, 16-bit)."""
        from ..io.images import ImageReadError, encode_image, read_image

        try:
            img = read_image(self.image(image_id).path, max_pixels=self.max_pixels)
        except ImageReadError:  # dropped from the store meanwhile
            raise ApiError(404, f"no image {_shown(image_id)} (dropped: the upload store was full)") from None
        a = img.pixels
        if a.dtype.itemsize == 2:
            a = (a.astype("float32") / 257).round().astype("uint8")
        return encode_image(a, ".png")

    # --- models and jobs ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"tasks": list(TASKS), "styles": list(self.styles), "models": self.model_files(),
                "max_megapixels": self.max_pixels / 1e6, "max_upload_mb": self.max_upload_bytes / 2**20,
                "max_store_mb": self.max_store_bytes / 2**20}

    def style_thumbnail(self, style: str) -> bytes:
        """A 128 px PNG of a generated scene in the style (made once per style, then kept)."""
        import numpy as np

        from ..io.images import encode_image

        if style not in self.styles:
            raise ApiError(404, f"unknown style {_shown(style)}")
        if style not in self._thumbs:
            yy, xx = np.mgrid[0:128, 0:128].astype(np.float32) / 127
            scene = np.stack([0.35 + 0.5 * yy, 0.55 + 0.3 * np.sin(6 * xx), 0.9 - 0.6 * yy], -1)  # sky to field
            scene[(xx - 0.65) ** 2 + (yy - 0.35) ** 2 < 0.02] = (0.95, 0.85, 0.3)  # a sun
            scene[yy > 0.7 - 0.1 * np.sin(5 * xx)] *= (0.5, 0.9, 0.4)  # hills
            photo = (np.clip(scene, 0, 1) * 255).round().astype(np.uint8)
            with self.device_lock:
                out = self.model(self.shipped(f"style-{style}")).run_arrays([photo])[0]
            self._thumbs[style] = encode_image(out, ".png")
        return self._thumbs[style]

    def model_files(self) -> list[str]:
        """The --models folder's weights files by name: the only names the Restore task accepts."""
        if self.models_dir is None or not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.glob("*.safetensors") if p.is_file())

    @staticmethod
    def shipped(name: str) -> Path:
        """A shipped model's file in the package (never looked up in the working directory)."""
        from ..weights import SUFFIX, shipped_dir

        return Path(shipped_dir()) / f"{name}{SUFFIX}"

    def model(self, path: Path, ensemble: int = 1):
        """The model in `path` (a file `plan` chose: shipped, or listed in the models folder), loaded once."""
        from ..weights import WeightsError

        key = (str(path), ensemble)
        with self._models_lock:  # the request thread (checks) and the worker (jobs) both ask
            if key not in self._models:
                try:
                    self._models[key] = self.tasks.load_model(path, device=self.device, tile=self.tile,
                                                              ensemble=ensemble, backend=self.backend)
                except WeightsError as exc:  # the operator's file: named, its folder not shown
                    raise ValueError(str(exc).replace(str(path), path.name)) from None
            return self._models[key]

    def submit(self, body: dict[str, Any]) -> Job:
        unknown = [k for k in body if k not in JOB_KEYS]
        if unknown:
            raise ApiError(400, f"unknown key {_shown(unknown[0])} in the job (it takes {', '.join(JOB_KEYS)})")
        task = body.get("task")
        if not isinstance(task, str) or task not in TASKS:
            raise ApiError(400, f"task must be one of {', '.join(TASKS)}, got {_shown(task)}")
        image_id = body.get("image")
        if not isinstance(image_id, str):
            raise ApiError(400, f"image must be the id of an uploaded image, got {_shown(image_id)}")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise ApiError(400, f"options must be a JSON object, got {_shown(options)}")
        path, ensemble, request = self.plan(task, options, self.image(image_id))
        if task != "inpaint":  # a bad value fails now, not in the queue (inpaint's mask is read on the worker)
            try:  # loads the model here, on its first job, rather than on the worker
                self.model(path, ensemble).task.check_request(**request)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, f"{task}: {_one_line(exc)}") from None
        with self._store_lock:  # from here the store keeps the job's images until it has run
            self.image(image_id)
            if task == "inpaint":
                self.image(options["mask"])
            try:
                return self.jobs.submit(Job(task, options, image_id))
            except QueueFull as exc:
                raise ApiError(429, str(exc)) from None

    def plan(self, task: str, options: dict[str, Any], src: Stored) -> tuple[Path, int, dict[str, Any]]:
        """(model file, ensemble, request) for a job. Every option is a value from a closed set or
        a checked range, of its JSON type (true is no number, "false" no flag); the model file is
        one the studio lists, never a client's path. ApiError 400 naming the option otherwise."""
        unknown = [k for k in options if k not in OPTIONS[task]]
        if unknown:
            raise ApiError(400, f"{task}: unknown option {_shown(unknown[0])} ({task} takes "
                                f"{', '.join(OPTIONS[task])})")
        get = options.get
        if task == "denoise":
            sigma = get("sigma")
            return self.shipped("denoise"), 2, {} if sigma is None else {"sigma": _number(task, "sigma", sigma, 0, 255)}
        if task == "upscale":
            scale = _choice(task, "scale", get("scale", 4), (2, 4))
            kind = _choice(task, "kind", get("kind", "classic"), ("classic", "real"))
            if kind == "real" and scale != 4:
                raise ApiError(400, "upscale: kind 'real' is x4 only (scale 4)")
            return self.shipped(f"upscale-x{scale}" + ("-real" if kind == "real" else "")), 1, {}
        if task == "stylize":
            style = get("style")
            if not isinstance(style, str) or style not in self.styles:
                raise ApiError(400, f"stylize: unknown style {_shown(style)} (styles: {', '.join(self.styles)})")
            return self.shipped(f"style-{style}"), 1, {"strength": _number(task, "strength", get("strength", 1.0),
                                                                           0, 1)}
        if task == "restore":
            name, files = get("model"), self.model_files()
            if not isinstance(name, str) or name not in files:
                raise ApiError(400, f"restore: unknown model {_shown(name)} (the models folder holds: "
                                    f"{', '.join(files) or 'none'})")
            return self.models_dir / name, 1, {}
        mask_id = get("mask")  # inpaint
        if not isinstance(mask_id, str):
            raise ApiError(400, f"inpaint: option 'mask' must be the id of an uploaded mask image, "
                                f"got {_shown(mask_id)}")
        mask = self.image(mask_id)
        if (mask.width, mask.height) != (src.width, src.height):
            raise ApiError(400, f"inpaint: the mask is {mask.width}x{mask.height} but the image is "
                                f"{src.width}x{src.height}")
        return self.shipped("inpaint"), 1, {"texture": _flag(task, "texture", get("texture", True))}

    def _run(self, job: Job) -> str:
        """On the worker thread: run the job's model on its image, store the result as a new image."""
        import torch

        from ..io.images import encode_image, read_image

        src = self.image(job.image)
        path, ensemble, request = self.plan(job.task, job.options, src)
        img = read_image(src.path, max_pixels=self.max_pixels)
        if job.task == "inpaint":
            masks = self.tasks.inpaint_masks
            hole = masks.fillable(masks.mask_from_pixels(read_image(self.image(job.options["mask"]).path).pixels),
                                  "the mask is empty: paint over what to remove",
                                  "the mask covers the whole image: no known pixel to fill from")
            request["mask"] = torch.from_numpy(hole.astype("float32"))[None, None]
            request["check_cancel"] = job.check_cancel  # the texture step reports no tiles
        with self.device_lock:
            model = self.model(path, ensemble)
            model.progress = job.progress
            try:
                out = model.run_arrays([img.pixels], **request)[0]
            finally:
                model.progress = None
        result_id = uuid.uuid4().hex
        path = self.folder / f"{result_id}{src.suffix}"
        path.write_bytes(encode_image(out, src.suffix, 95, img.icc, img.exif))
        h, w, c = out.shape
        stem = _inpainted(src.stem) if job.task == "inpaint" else f"{src.stem}_{model.task.suffix}"
        with self._store_lock:
            self.images[result_id] = Stored(path, stem, src.suffix, w, h, c, src.bits, path.stat().st_size)
            try:
                self._make_room(0, keep=result_id)
            except ApiError:  # over the bound until the queued jobs have run: they need their images
                pass
        return result_id


def _inpainted(stem: str) -> str:
    """Several removals in a row keep one name: photo -> photo_inpainted -> photo_inpainted."""
    return stem if stem.endswith("_inpainted") else f"{stem}_inpainted"


def _host_name(host: str) -> str:
    """A Host header's name: lower case, without the port or an IPv6 address's brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class Handler(BaseHTTPRequestHandler):
    server: "StudioServer"
    protocol_version = "HTTP/1.1"
    _responded = False  # the status line is out: a later error cannot answer again
    _unread = 0  # request body bytes not read: the connection cannot carry another request

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # a stalled client's read or write ends after this long
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet: errors go to the page)
        pass

    def _log(self, text: str) -> None:
        self.server.log(f"{self.client_address[0]}: {self.command} {urlparse(self.path).path[:80]}: {text}")

    # --- plumbing ----------------------------------------------------------------------------
    def _send_head(self, status: int, content_type: str, length: int, headers: dict[str, str] | None = None) -> None:
        self._responded = True
        self.send_response(status)
        for k, v in {"Content-Type": content_type, "Content-Length": str(length), "Cache-Control": "no-store",
                     **SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(k, v)
        if self._unread or self.close_connection:  # the rest of the body is not read: no next request
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._send_head(status, content_type, len(body), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_file(self, path: Path, content_type: str, headers: dict[str, str]) -> None:
        """Streamed from disk: a large image is not read into memory per download."""
        try:
            f = open(path, "rb")
        except FileNotFoundError:  # dropped from the store meanwhile
            raise ApiError(404, "no such image (dropped: the upload store was full)") from None
        with f:
            self._send_head(200, content_type, os.fstat(f.fileno()).st_size, headers)
            if self.command != "HEAD":
                shutil.copyfileobj(f, self.wfile, 1 << 20)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (a bad request line, headers too long) as JSON too."""
        self.close_connection = True
        try:
            self._json(code, {"error": message or HTTPStatus(code).phrase})
        except OSError:
            pass

    def _fail(self, status: int, message: str) -> None:
        if self._responded:  # mid-answer: a second status line would land inside the body
            self.close_connection = True
            self._log(f"failed while answering: {message}")
            return
        try:
            self._json(status, {"error": message})
        except OSError:  # the client is gone
            self.close_connection = True

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "Transfer-Encoding is not supported: send the body with a Content-Length")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        text = values.pop() if len(values) == 1 else "0" if not values else None
        if text is None or not re.fullmatch(r"[0-9]{1,15}", text):
            self.close_connection = True  # where the body ends is unknown
            raise ApiError(400, "Content-Length must be one whole number of bytes, got "
                                f"{_shown(', '.join(sorted(self.headers.get_all('Content-Length'))))}")
        return int(text)

    def _read(self, n: int) -> bytes:
        data = self.rfile.read(min(n, self._unread))
        self._unread -= len(data)
        return data

    def _check_access(self, api: bool) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            raise ApiError(400, "several Host headers")
        host = hosts[0].strip().lower() if hosts else ""
        if self.server.loopback and _host_name(host) not in LOOPBACK:
            raise ApiError(403, f"this studio answers only on 127.0.0.1 / localhost / [::1], not "
                                f"{_shown(_host_name(host)) if host else 'no host'}")
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() not in (f"http://{host}", f"https://{host}"):
            raise ApiError(403, f"requests from other sites are refused (Origin {_shown(origin)})")
        site = self.headers.get("Sec-Fetch-Site", "same-origin")
        if api and site not in ("same-origin", "none"):
            raise ApiError(403, f"requests from other sites are refused (Sec-Fetch-Site {_shown(site)})")
        given = self.headers.get("X-Vitrestore-Token") or ""
        if api and self.server.token and not hmac.compare_digest(given.encode("latin-1", "replace"),
                                                                 self.server.token.encode()):
            raise ApiError(401, "a token is required (X-Vitrestore-Token header): the studio's, from --token-file, "
                                f"${TOKEN_ENV} or --token")

    def _body_json(self) -> dict[str, Any]:
        kind = _media_type(self.headers.get("Content-Type"))
        if kind != "application/json":
            raise ApiError(415, f"the body must be JSON (Content-Type: application/json), got {_shown(kind or 'none')}")
        if self._unread > MAX_JSON_BYTES:
            raise ApiError(413, f"the body is over {MAX_JSON_BYTES // 1024} kB")
        n = self._unread
        raw = self._read(n)
        if len(raw) < n:
            raise ApiError(400, "the body ended early")
        try:
            data = json.loads(raw or b"{}", parse_constant=_no_constant)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError, NaN
            raise ApiError(400, "the body is not JSON") from None
        except RecursionError:
            raise ApiError(400, "the body is not JSON the studio takes: nested too deeply") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def _handle(self, method: str) -> None:
        try:
            self._responded, self._unread = False, 0  # per request: one connection carries several
            self._unread = self._content_length()
            self._route(method)
        except ApiError as exc:
            if exc.log:
                self._log(str(exc))
            self._fail(exc.status, str(exc))
        except TimeoutError:  # a stalled client: its thread and partial upload go
            self.close_connection = True
            self._log(f"no data for {self.server.idle_timeout:g} s: connection closed")
            self._fail(408, f"no data for {self.server.idle_timeout:g} s")
        except ConnectionError as exc:  # the client went away (an aborted upload, a closed tab)
            self.close_connection = True
            self._log(f"the client closed the connection ({_one_line(exc)})")
        except Exception as exc:  # noqa: BLE001  (never a stack trace to the page)
            self._log(f"internal error: {type(exc).__name__}: {_one_line(exc)}")
            self._fail(500, f"internal error: {_one_line(exc)}")

    def _route(self, method: str) -> None:
        studio = self.server.studio
        path = urlparse(self.path).path
        if method == "GET" and path in STATIC:
            self._check_access(api=False)
            name, kind = STATIC[path]
            return self._send(200, (resources.files("vitrestore.studio") / "static" / name).read_bytes(), kind)
        if not path.startswith("/api/"):
            self._check_access(api=False)
            raise ApiError(404, f"no page {_shown(path)}")
        self._check_access(api=True)
        parts = path.strip("/").split("/")[1:]  # after "api"
        if method == "GET" and parts == ["info"]:
            return self._json(200, studio.info())
        if method == "GET" and len(parts) == 3 and parts[0] == "styles" and parts[2] == "thumbnail":
            return self._send(200, studio.style_thumbnail(parts[1]), "image/png")
        if method == "POST" and parts == ["images"]:
            kind = _media_type(self.headers.get("Content-Type"))
            if kind != UPLOAD_TYPES[0] and not kind.startswith(UPLOAD_TYPES[1]):
                raise ApiError(415, "an upload is the file's bytes with Content-Type image/... or "
                                    f"application/octet-stream, not {_shown(kind or 'none')}")
            name = unquote(self.headers.get("X-Filename") or "image")
            image_id = studio.add_image(self._read, self._unread, name)
            return self._json(201, studio.image(image_id).public(image_id))
        if method == "GET" and len(parts) == 3 and parts[0] == "images" and parts[2] in ("file", "preview"):
            img = studio.image(parts[1])
            if parts[2] == "preview":
                return self._send(200, studio.preview(parts[1]), "image/png")
            return self._send_file(img.path, CONTENT_TYPES[img.suffix],
                                   {"Content-Disposition": content_disposition(f"{img.stem}{img.suffix}")})
        if method == "GET" and len(parts) == 2 and parts[0] == "images":
            return self._json(200, studio.image(parts[1]).public(parts[1]))
        if method == "POST" and parts == ["jobs"]:
            return self._json(202, studio.submit(self._body_json()).public())
        if len(parts) >= 2 and parts[0] == "jobs":
            job = studio.jobs.jobs.get(parts[1])
            if job is None:
                raise ApiError(404, f"no job {_shown(parts[1])}")
            if method == "GET" and len(parts) == 2:
                return self._json(200, job.public())
            if method == "POST" and parts[2:] == ["cancel"]:
                return self._json(200, studio.jobs.cancel(job.id).public())
        raise ApiError(404, f"no API route {method} {_shown(path)}")

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _not_allowed(self) -> None:
        self.close_connection = True  # a body, if any, is not read
        self._send(405, json.dumps({"error": f"method {self.command} is not allowed (GET, HEAD, POST)"}).encode(),
                   "application/json", {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815  (a cross-site preflight ends here)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _stderr_log(text: str) -> None:
    print(f"vitrestore studio: {text}", file=sys.stderr, flush=True)


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, studio: Studio, host: str = "127.0.0.1", port: int = 7860, token: str | None = None,
                 idle_timeout: float = 30.0, max_connections: int = 64, log: Callable[[str], None] | None = None):
        """`idle_timeout`: seconds a connection may wait on its client; `max_connections` at once
        (one thread each; more are answered 503); `log(line)`: one line per client failure (stderr)."""
        self.loopback = host in LOOPBACK
        if not self.loopback and not token:
            raise ValueError(f"--host {host} makes the studio reachable from other machines: give a --token")
        self.studio, self.token = studio, check_token(token) if token else None
        self.idle_timeout, self.log = idle_timeout, log or _stderr_log
        self._slots = threading.BoundedSemaphore(max_connections)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET  # --host ::1 is IPv6
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if self.loopback:
            host = "[::1]" if self.address_family == socket.AF_INET6 else "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):  # every thread busy: refuse rather than grow
            body = b'{"error": "too many connections; try again"}'
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """One line, never a traceback (an exception outside a request's own handling)."""
        self.log(f"{client_address[0]}: {_one_line(sys.exc_info()[1] or RuntimeError('unknown error'))}")

    def close(self) -> bool:
        """Stop serving (from another thread than serve_forever's) and close the studio."""
        self.shutdown()
        self.server_close()
        return self.studio.close()
