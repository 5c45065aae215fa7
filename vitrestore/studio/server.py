"""`vitrestore studio`: a local web page for every task, served by the standard library's
threading HTTP server (no web framework: nothing to install, nothing fetched, one thread per
request, model work on the job queue's worker thread; docs/studio.md has the API).

The task models come in from the application layer (cli.py hands over `vitrestore.tasks`; the
core never imports a task): the same `load_model`, tiling and image reader as the CLI.

Safety: no file path comes from the client. Uploads are streamed to a private temporary folder
under a random id, decoded by the CLI's hardened reader with its megapixel limit, and the folder
is removed on exit. Requests to a loopback server must name it in their Host header (no DNS
rebinding); a server bound beyond loopback requires a token in the X-Vitrestore-Token header.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..io.formats import DEFAULT_MAX_PIXELS
from .jobs import Job, JobQueue, QueueFull

MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"),
         (b"BM", ".bmp"))
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".tif": "image/tiff", ".bmp": "image/bmp",
                 ".webp": "image/webp"}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
TASKS = ("denoise", "upscale", "inpaint", "stylize", "restore")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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


@dataclass
class Stored:
    path: Path  # inside the studio's private folder
    stem: str  # the root upload's stem: results are named <stem>_<suffix><ext>, as the CLI names them
    suffix: str  # the format (and the results' format)
    width: int
    height: int
    channels: int
    bits: int

    def public(self, image_id: str) -> dict[str, Any]:
        return {"id": image_id, "name": f"{self.stem}{self.suffix}", "width": self.width, "height": self.height,
                "channels": self.channels, "bits": self.bits, "file": f"/api/images/{image_id}/file",
                "preview": f"/api/images/{image_id}/preview"}


class Studio:
    """The state behind the HTTP API: uploaded and result images, loaded models, the job queue."""

    def __init__(self, tasks: Any, device: str = "auto", models_dir: Path | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_upload_bytes: int = 256 * 2**20, queue_size: int = 8,
                 tile: int = 512, backend: str | None = None):
        """`tasks`: the task package (load_model, inpaint_masks.mask_from_pixels)."""
        self.tasks = tasks
        self.folder = Path(tempfile.mkdtemp(prefix="vitrestore-studio-"))
        self.device, self.models_dir, self.tile, self.backend = device, models_dir, tile, backend
        self.max_pixels, self.max_upload_bytes = max_pixels, max_upload_bytes
        self.images: dict[str, Stored] = {}
        self._models: dict[tuple[str, int], Any] = {}
        self._models_lock = threading.Lock()  # loaded models, kept: one load of each
        self._thumbs: dict[str, bytes] = {}
        self.device_lock = threading.Lock()  # one model run at a time: jobs, thumbnails
        self._decode = threading.Semaphore(2)  # at most two uploads decoded at once: memory stays bounded
        self.jobs = JobQueue(self._run, size=queue_size)

    def close(self) -> None:
        self.jobs.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- images ------------------------------------------------------------------------------
    def add_image(self, read_chunk, length: int, name: str, stem: str | None = None) -> str:
        """Stream an upload of `length` bytes to the private folder, check it with the CLI's
        reader; its id. Raises ApiError (4xx) for anything that is not a usable image."""
        from ..io.images import ImageReadError, read_image

        if length <= 0:
            raise ApiError(400, f"{safe_stem(name)}: empty upload")
        if length > self.max_upload_bytes:
            raise ApiError(413, f"{safe_stem(name)}: {length / 2**20:.0f} MB is over the upload limit of "
                                f"{self.max_upload_bytes / 2**20:.0f} MB")
        image_id = uuid.uuid4().hex
        tmp = self.folder / f"{image_id}.upload"
        with open(tmp, "wb") as f:
            left = length
            while left:
                chunk = read_chunk(min(left, 1 << 20))
                if not chunk:
                    break
                f.write(chunk)
                left -= len(chunk)
        with open(tmp, "rb") as f:
            head = f.read(16)  # the format's magic bytes (not the whole upload into memory)
        suffix = sniff_suffix(head)
        if left or suffix is None:
            tmp.unlink()
            raise ApiError(400, f"{safe_stem(name)}: " + ("the upload ended early" if left else
                                                          "not an image (PNG, JPEG, TIFF, WebP or BMP)"))
        path = tmp.with_suffix(suffix)
        tmp.rename(path)
        with self._decode:
            try:
                img = read_image(path, max_pixels=self.max_pixels)
            except ImageReadError as exc:
                path.unlink()
                text = str(exc).replace(str(path), "").lstrip(": ")
                raise ApiError(413 if "megapixel" in text or "too large" in text else 400,
                               f"{safe_stem(name)}{suffix}: {text}") from None
        h, w, c = img.pixels.shape
        self.images[image_id] = Stored(path, stem or safe_stem(name), suffix, w, h, c,
                                       16 if img.pixels.dtype.itemsize == 2 else 8)
        return image_id

    def image(self, image_id: str) -> Stored:
        if image_id not in self.images:
            raise ApiError(404, f"no image {image_id!r} (uploads live as long as the studio runs)")
        return self.images[image_id]

    def preview(self, image_id: str) -> bytes:
        """The image as an 8-bit PNG a browser can show (TIFF, 16-bit)."""
        from ..io.images import encode_image, read_image

        img = read_image(self.image(image_id).path, max_pixels=self.max_pixels)
        a = img.pixels
        if a.dtype.itemsize == 2:
            a = (a.astype("float32") / 257).round().astype("uint8")
        return encode_image(a, ".png")

    # --- models and jobs ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        from ..weights import shipped_models

        shipped = shipped_models()
        return {"tasks": list(TASKS), "styles": [n[len("style-"):] for n in shipped if n.startswith("style-")],
                "models": self.model_files(), "max_megapixels": self.max_pixels / 1e6,
                "max_upload_mb": self.max_upload_bytes / 2**20}

    def style_thumbnail(self, style: str) -> bytes:
        """A 128 px PNG of a generated scene in the style (made once per style, then kept)."""
        import numpy as np

        from ..commands import style_model
        from ..io.images import encode_image

        if style not in self.info()["styles"]:
            raise ApiError(404, f"unknown style {style!r}")
        if style not in self._thumbs:
            yy, xx = np.mgrid[0:128, 0:128].astype(np.float32) / 127
            scene = np.stack([0.35 + 0.5 * yy, 0.55 + 0.3 * np.sin(6 * xx), 0.9 - 0.6 * yy], -1)  # sky to field
            scene[(xx - 0.65) ** 2 + (yy - 0.35) ** 2 < 0.02] = (0.95, 0.85, 0.3)  # a sun
            scene[yy > 0.7 - 0.1 * np.sin(5 * xx)] *= (0.5, 0.9, 0.4)  # hills
            photo = (np.clip(scene, 0, 1) * 255).round().astype(np.uint8)
            with self.device_lock:
                out = self.model(style_model(style)).run_arrays([photo])[0]
            self._thumbs[style] = encode_image(out, ".png")
        return self._thumbs[style]

    def model_files(self) -> list[str]:
        if self.models_dir is None or not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.glob("*.safetensors") if p.is_file())

    def model(self, name: str, ensemble: int = 1):
        key = (name, ensemble)
        with self._models_lock:  # the request thread (checks) and the worker (jobs) both ask
            if key not in self._models:
                self._models[key] = self.tasks.load_model(name, device=self.device, tile=self.tile,
                                                          ensemble=ensemble, backend=self.backend)
            return self._models[key]

    def submit(self, body: dict[str, Any]) -> Job:
        task = body.get("task")
        if task not in TASKS:
            raise ApiError(400, f"task must be one of {', '.join(TASKS)}, got {task!r}")
        image_id = str(body.get("image", ""))
        self.image(image_id)
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise ApiError(400, "options must be a JSON object")
        name, ensemble, request = self.plan(task, options, self.image(image_id))
        if task != "inpaint":  # a bad value fails now, not in the queue (inpaint's mask is read on the worker)
            try:  # loads the model here, on its first job, rather than on the worker
                self.model(name, ensemble).task.check_request(**request)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, f"{task}: {exc}") from None
        try:
            return self.jobs.submit(Job(task, options, image_id))
        except QueueFull as exc:
            raise ApiError(429, str(exc)) from None

    def plan(self, task: str, options: dict[str, Any], src: Stored) -> tuple[str, int, dict[str, Any]]:
        """(model name, ensemble, request) for a job, the web form's options parsed; ApiError 400
        for bad options. The request's values are the task's to check (Task.check_request)."""
        from ..commands import style_model, upscale_model

        try:
            if task == "denoise":
                sigma = options.get("sigma")
                return "denoise", 2, {} if sigma in (None, "") else {"sigma": float(sigma)}
            if task == "upscale":
                return upscale_model(options.get("scale", 4), str(options.get("kind", "classic"))), 1, {}
            if task == "stylize":
                style = str(options.get("style", ""))
                if style not in self.info()["styles"]:
                    raise ValueError(f"unknown style {style!r}")
                return style_model(style), 1, {"strength": float(options.get("strength", 1.0))}
            if task == "restore":
                name = str(options.get("model", ""))
                if name not in self.model_files():
                    raise ValueError(f"unknown model {name!r} (the models folder holds: "
                                     f"{', '.join(self.model_files()) or 'none'})")
                return str(self.models_dir / name), 1, {}
            mask = self.image(str(options.get("mask", "")))  # inpaint
            if (mask.width, mask.height) != (src.width, src.height):
                raise ValueError(f"the mask is {mask.width}x{mask.height} but the image is {src.width}x{src.height}")
            return "inpaint", 1, {"texture": bool(options.get("texture", True))}
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"{task}: {exc}") from None

    def _run(self, job: Job) -> str:
        """On the worker thread: run the job's model on its image, store the result as a new image."""
        import torch

        from ..io.images import encode_image, read_image

        src = self.image(job.image)
        name, ensemble, request = self.plan(job.task, job.options, src)
        img = read_image(src.path, max_pixels=self.max_pixels)
        if job.task == "inpaint":
            masks = self.tasks.inpaint_masks
            hole = masks.fillable(masks.mask_from_pixels(read_image(self.image(job.options["mask"]).path).pixels),
                                  "the mask is empty: paint over what to remove",
                                  "the mask covers the whole image: no known pixel to fill from")
            request["mask"] = torch.from_numpy(hole.astype("float32"))[None, None]
        with self.device_lock:
            model = self.model(name, ensemble)
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
        self.images[result_id] = Stored(path, stem, src.suffix, w, h, c, src.bits)
        return result_id


def _inpainted(stem: str) -> str:
    """Several removals in a row keep one name: photo -> photo_inpainted -> photo_inpainted."""
    return stem if stem.endswith("_inpainted") else f"{stem}_inpainted"


class Handler(BaseHTTPRequestHandler):
    server: "StudioServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet: errors go to the page)
        pass

    # --- plumbing ----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _check_access(self, api: bool) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if self.server.loopback and host not in LOOPBACK:
            raise ApiError(403, f"this studio answers only on 127.0.0.1 / localhost, not {host or 'no host'}")
        if api and self.server.token and self.headers.get("X-Vitrestore-Token") != self.server.token:
            raise ApiError(401, "a token is required (X-Vitrestore-Token header): the one given to --token")

    def _body_json(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        if n > 1 << 20:
            raise ApiError(413, "request body too large")
        try:
            data = json.loads(self.rfile.read(n) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def _handle(self, method: str) -> None:
        studio = self.server.studio
        try:
            path = urlparse(self.path).path
            if method == "GET" and path in STATIC:
                self._check_access(api=False)
                name, kind = STATIC[path]
                self._send(200, (resources.files("vitrestore.studio") / "static" / name).read_bytes(), kind)
                return
            if not path.startswith("/api/"):
                raise ApiError(404, f"no page {path}")
            self._check_access(api=True)
            parts = path.strip("/").split("/")[1:]  # after "api"
            if method == "GET" and parts == ["info"]:
                return self._json(200, studio.info())
            if method == "GET" and len(parts) == 3 and parts[0] == "styles" and parts[2] == "thumbnail":
                return self._send(200, studio.style_thumbnail(parts[1]), "image/png")
            if method == "POST" and parts == ["images"]:
                length = int(self.headers.get("Content-Length") or 0)
                if length > studio.max_upload_bytes:
                    self.close_connection = True  # the body is not read
                name = unquote(self.headers.get("X-Filename") or "image")
                image_id = studio.add_image(self.rfile.read, length, name)
                return self._json(201, studio.image(image_id).public(image_id))
            if method == "GET" and len(parts) == 3 and parts[0] == "images" and parts[2] in ("file", "preview"):
                img = studio.image(parts[1])
                if parts[2] == "preview":
                    return self._send(200, studio.preview(parts[1]), "image/png")
                name = f"{img.stem}{img.suffix}"
                return self._send(200, img.path.read_bytes(), CONTENT_TYPES[img.suffix],
                                  {"Content-Disposition": f'attachment; filename="{name}"'})
            if method == "GET" and len(parts) == 2 and parts[0] == "images":
                return self._json(200, studio.image(parts[1]).public(parts[1]))
            if method == "POST" and parts == ["jobs"]:
                return self._json(202, studio.submit(self._body_json()).public())
            if len(parts) >= 2 and parts[0] == "jobs":
                job = studio.jobs.jobs.get(parts[1])
                if job is None:
                    raise ApiError(404, f"no job {parts[1]!r}")
                if method == "GET" and len(parts) == 2:
                    return self._json(200, job.public())
                if method == "POST" and parts[2:] == ["cancel"]:
                    return self._json(200, studio.jobs.cancel(job.id).public())
            raise ApiError(404, f"no API route {method} {path}")
        except ApiError as exc:
            self._json(exc.status, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001  (never a stack trace to the page)
            self._json(500, {"error": f"internal error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, studio: Studio, host: str = "127.0.0.1", port: int = 7860, token: str | None = None):
        self.loopback = host in LOOPBACK
        if not self.loopback and not token:
            raise ValueError(f"--host {host} makes the studio reachable from other machines: give a --token")
        self.studio, self.token = studio, token
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if self.loopback else host}:{port}/"

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.studio.close()
