"""`vitrestore studio`: a local web page for every task, served by the standard library's
threading HTTP server (no web framework: nothing to install, nothing fetched, one thread per
request, model work on the job queue's worker thread; docs/studio.md has the API).

The task models come in from the application layer (cli.py hands over `vitrestore.tasks`; the
core never imports a task): the same `load_model`, tiling and image reader as the CLI.

This module holds `Studio`, the application: its models and jobs, the running of them, and a
job's preview on a crop (`preview`: the same plan, run at once on a few hundred pixels). The
rest: store.py (the private upload folder), options.py (a job's checks), http.py (the server, its
requests and access checks), jobs.py (the work queue), errors.py (the client-facing error).

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

import threading
from pathlib import Path
from typing import Any

from .. import request as requests
from ..io.formats import DEFAULT_MAX_PIXELS
from .errors import ApiError, _one_line, _shown
from .jobs import Job, JobQueue, QueueFull
from .options import DRAFT_KEYS, PREVIEW_KEYS, JobPlanner, check_job, crop_box, frame_index
from .store import Stored, UploadStore, eight_bit

PREVIEW_CONTEXT = 32  # pixels of the image around a preview's crop that the model sees too (as tiles overlap)
PREVIEW_WAITING = 4  # previews at once (one runs, the others wait their turn); more are answered 429 at once


class Studio:
    """The state behind the HTTP API: uploaded and result images, loaded models, the job queue."""

    def __init__(self, tasks: Any, device: str = "auto", models_dir: Path | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_upload_bytes: int = 256 * 2**20, queue_size: int = 8,
                 tile: int = 512, backend: str | None = None, max_store_bytes: int = 2 * 2**30,
                 max_images: int = 1000, temp_root: Path | None = None):
        """`tasks`: the task package (commands, load_model): the studio's tasks are those whose
        declaration has a `studio` (vitrestore/command.py). `max_store_bytes`
        and `max_images` bound the private folder; `temp_root`: where it is made (the system's)."""
        from ..weights import shipped_models

        self.store = UploadStore(self._in_use, max_pixels, max_upload_bytes, max_store_bytes, max_images, temp_root)
        self.tasks = tasks
        self.device, self.tile, self.backend = device, tile, backend
        self.styles = [n[len("style-"):] for n in shipped_models() if n.startswith("style-")]
        self.planner = JobPlanner(tasks.commands(), self.styles, models_dir, self.store.image)
        self._models: dict[tuple[str, int], Any] = {}
        self._models_lock = threading.Lock()  # loaded models, kept: one load of each
        self._thumbs: dict[str, bytes] = {}
        self.device_lock = threading.Lock()  # one model run at a time: jobs, thumbnails, previews
        self._preview_lock = threading.Lock()  # one preview at a time (the others wait their turn)
        # a few previews at once: each waiting one holds a connection's thread, and those are bounded too
        self._preview_slots = threading.BoundedSemaphore(PREVIEW_WAITING)
        self._closing = threading.Event()  # set by close(): no preview starts or waits any more
        self._preview_source: tuple[Any, Any] = (None, None)  # ((image id, frame), its pixels): the last previewed
        self._closed: bool | None = None
        self.jobs = JobQueue(self._run, size=queue_size)

    @property
    def folder(self) -> Path:
        """The private folder the uploads and results are in (the store's)."""
        return self.store.folder

    @property
    def images(self) -> dict[str, Stored]:
        """The uploaded and result images by id (the store's)."""
        return self.store.images

    def close(self, timeout: float = 60) -> bool:
        """Cancel every job, wait for the worker and any model call on a request thread (at most
        `timeout` s), remove the folder. Whether everything stopped: if not, a thread is still in a
        model call and the process must end with os._exit (a normal exit would abort)."""
        if self._closed is not None:
            return self._closed
        self._closing.set()
        stopped = self.jobs.stop(timeout)
        # held from here on: no model call or load starts, none is under way
        held = stopped and self.device_lock.acquire(timeout=timeout) and self._models_lock.acquire(timeout=timeout)
        self.store.close()
        self._closed = stopped and held
        return self._closed

    def _in_use(self) -> set[str]:
        """The ids a queued or running job reads (its image, its uploads: an inpaint mask)."""
        ids = set()
        for job in list(self.jobs.jobs.values()):
            if job.active:
                ids.update([job.image, *self.planner.uploads(job.task, job.options).values()])
        return ids

    # --- models and jobs ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"tasks": list(self.planner.tasks), "styles": list(self.styles), "models": self.planner.model_files(),
                "max_megapixels": self.store.max_pixels / 1e6,
                "max_upload_mb": self.store.max_upload_bytes / 2**20,
                "max_store_mb": self.store.max_store_bytes / 2**20}

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
                out = self.model(self.planner.shipped(f"style-{style}")).run_arrays([photo])[0]
            self._thumbs[style] = encode_image(out, ".png")
        return self._thumbs[style]

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
        task, image_id, options = check_job(body, self.planner.tasks)
        src = self.store.image(image_id)
        path, ensemble, request = self.planner.plan(task, options, src)
        if src.clip is not None and self.planner.adapt_seconds(task, options) is not None:
            raise ApiError(400, f"{task}: 'adapt' fine-tunes on one photo; a clip runs with the model as it is "
                                f"(set adapt to 0)")
        uploads = self.planner.uploads(task, options)
        if not uploads:  # a bad value fails now, not in the queue (an upload, e.g. a mask, is read on the worker)
            try:  # loads the model here, on its first job, rather than on the worker
                self.model(path, ensemble).task.check_request(**request)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, f"{task}: {_one_line(exc)}") from None
        with self.store.lock:  # from here the store keeps the job's images until it has run
            for upload in (image_id, *uploads.values()):
                self.store.image(upload)
            try:
                return self.jobs.submit(Job(task, options, image_id))
            except QueueFull as exc:
                raise ApiError(429, str(exc)) from None

    def preview(self, body: dict[str, Any]) -> tuple[bytes, tuple[int, int, int, int]]:
        """POST /api/preview: (an 8-bit RGB PNG of the crop processed as the job with these options
        would process it, the crop's box (left, top, width, height) in the image). The same plan
        (model file, ensemble, request) as a job, run at once on the request's thread, one preview
        at a time and one model run at a time (after a running job). `adapt` is checked, then
        ignored: a preview never adapts. The model sees PREVIEW_CONTEXT pixels of the image around
        the crop (where there are), then the crop is cut out: its border gets the context it has in
        the job. Inpaint's mask is cut alike. At most PREVIEW_WAITING at once (429 beyond); 503 once
        the studio closes."""
        from ..io.images import encode_image

        task, image_id, options = check_job(body, self.planner.tasks, PREVIEW_KEYS, "the preview")
        src = self.store.image(image_id)
        path, ensemble, request = self.planner.plan(task, options, src)
        frame = frame_index(body.get("frame"), src)
        left, top, w, h = box = crop_box(body.get("crop"), src.width, src.height)
        m = PREVIEW_CONTEXT
        x0, y0, x1, y1 = max(left - m, 0), max(top - m, 0), min(left + w + m, src.width), min(top + h + m, src.height)
        cut = (slice(y0, y1), slice(x0, x1))
        model, out = self._run_now(task, image_id, path, ensemble, request,
                                   lambda: self._uploaded(task, options, cut), cut, frame)
        s = model.scale
        out = out[(top - y0) * s:(top - y0 + h) * s, (left - x0) * s:(left - x0 + w) * s]
        return encode_image(eight_bit(out, rgb=True), ".png"), box

    def draft(self, body: dict[str, Any]) -> bytes:
        """POST /api/draft {task, image, options, upload}: an 8-bit grey PNG of the image's size,
        the upload `upload` as the task's Draft proposes it (command.py; repair: the damage its
        detector finds), for the page to show in its painter before the job runs. The options are
        the job's, checked as a job's are, the upload itself left out. Run at once, as a preview
        is (its slots and locks)."""
        from ..io.images import encode_image

        task, image_id, options = check_job(body, self.planner.tasks, DRAFT_KEYS, "the draft")
        src = self.store.image(image_id)
        path, request = self.planner.plan_draft(task, body.get("upload"), options, src)
        frame = frame_index(body.get("frame"), src)
        _, out = self._run_now(task, image_id, path, 1, request, dict, (slice(None), slice(None)), frame)
        return encode_image(eight_bit(out, rgb=True)[..., :1], ".png")

    def _run_now(self, task: str, image_id: str, path: Path, ensemble: int, request: dict[str, Any],
                 uploaded: Any, cut: tuple[slice, slice], frame: int | None = None) -> tuple[Any, Any]:
        """(the model, its output on the image's pixels[cut]) at once, on the request's thread: one
        at a time (PREVIEW_WAITING wait, 429 beyond) and after a running job (or between two of a
        clip's frames); `uploaded()` the request's maps read from the uploads; `frame`: a clip's
        frame to run on. 503 once the studio closes."""
        from ..io.images import ImageReadError, read_image
        from ..io.video import VideoError
        from .clips import decode_frame

        if self._closing.is_set():
            raise ApiError(503, "the studio is closing")
        if not self._preview_slots.acquire(blocking=False):
            raise ApiError(429, f"previews are busy ({PREVIEW_WAITING} previews or drafts under way or waiting); try again")
        try:
            with self._preview_lock:
                try:
                    if self._preview_source[0] != (image_id, frame):
                        self._preview_source = (None, None)  # the old one goes before the next is read
                        src = self.store.image(image_id)
                        pixels = (read_image(src.path, max_pixels=self.store.max_pixels).pixels if frame is None
                                  else decode_frame(src.path, src.clip, frame))  # (H, W, C)
                        self._preview_source = ((image_id, frame), pixels)
                    request.update(uploaded())
                    model = self.model(path, ensemble)
                    model.task.check_request(**request)
                except (ImageReadError, FileNotFoundError):  # dropped from the store meanwhile
                    raise ApiError(404, f"no image {_shown(image_id)} (dropped: the upload store was full)") from None
                except VideoError as exc:
                    raise ApiError(400, f"frame {frame}: {_one_line(exc)}") from None
                except (TypeError, ValueError) as exc:
                    raise ApiError(400, f"{task}: {_one_line(exc)}") from None
                self._take_device()
                try:
                    out = model.run_arrays([self._preview_source[1][cut]], **request)[0]
                finally:
                    self.device_lock.release()
        finally:
            self._preview_slots.release()
        return model, out

    def _take_device(self) -> None:
        """The device lock for a preview, waited for (a running job's turn) until the studio closes:
        close() takes the lock for good, so a preview then answers 503 rather than wait for ever."""
        while not self.device_lock.acquire(timeout=0.1):
            if self._closing.is_set():
                raise ApiError(503, "the studio is closing")
        if self._closing.is_set():
            self.device_lock.release()
            raise ApiError(503, "the studio is closing")

    def _uploaded(self, task: str, options: dict[str, Any], cut: tuple[slice, slice] | None = None) -> dict[str, Any]:
        """A job's uploaded maps (e.g. inpaint's mask) as its request's (1, 1, H, W) tensors, read
        by the task's `read_upload` (cut as a preview's crop and its context are, when `cut` is
        given); its ValueError where an upload holds nothing to work on."""
        import torch

        from ..io.images import read_image

        studio = self.planner.commands[task].studio
        return {target: torch.from_numpy(studio.read_upload(target, read_image(self.store.image(upload).path).pixels,
                                                            cut).astype("float32"))[None, None]
                for target, upload in self.planner.uploads(task, options).items()}

    def _run(self, job: Job) -> str:
        """On the worker thread: run the job's model on its image, store the result as a new image
        (a clip: `_run_clip`)."""
        from ..io.images import encode_image, read_image

        src = self.store.image(job.image)
        path, ensemble, request = self.planner.plan(job.task, job.options, src)
        seconds = self.planner.adapt_seconds(job.task, job.options)
        request.update(self._uploaded(job.task, job.options))
        command = self.planner.commands[job.task]
        if "check_cancel" in requests.keys(command.request):  # a step that reports no tiles (inpaint's texture)
            request["check_cancel"] = job.check_cancel
        if src.clip is not None:
            return self._run_clip(job, src, self.model(path, ensemble), request)
        img = read_image(src.path, max_pixels=self.store.max_pixels)
        with self.device_lock:
            model = self.model(path, ensemble)
            if seconds is not None:
                model = self._adapted(job, model, img.pixels, request, seconds)
            model.progress = job.progress
            try:
                out = model.run_arrays([img.pixels], **request)[0]
            finally:
                model.progress = None
        return self.store.add_result(encode_image(out, src.suffix, 95, img.icc, img.exif), src,
                                     self._result_stem(job, src, model), out.shape)

    def _result_stem(self, job: Job, src: Stored, model: Any) -> str:
        """The result's name, as the CLI names it: <stem>_<suffix>."""
        command = self.planner.commands[job.task]
        suffix = command.studio.suffix or model.task.suffix
        if command.studio.keeps_name and src.stem.endswith(f"_{suffix}"):
            return src.stem  # runs in a row keep one name: photo -> photo_inpainted -> photo_inpainted
        return f"{src.stem}_{suffix}"

    def _run_clip(self, job: Job, src: Stored, model: Any, request: dict[str, Any]) -> str:
        """On the worker thread: every frame of the clip through the model as the CLI runs a clip
        (batch/clip.py's run_clip: each frame as an image is run, steady frames as the CLI's default
        for the task, the source's sound and other streams copied, the container's codec at its
        default quality), in a scratch folder the job removes whatever happens; the finished clip
        becomes a new image. The device is taken a frame at a time (a preview runs between two
        frames); progress counts frames; a cancel stops at the next tile or frame."""
        import shutil

        from ..batch.clip import run_clip
        from ..motion import PixelTrack
        from ..steady import Steady

        stem, total = self._result_stem(job, src, model), src.clip.frames
        folder = self.store.scratch(job.id)
        dst = folder / f"{stem}{src.suffix}"

        track = PixelTrack() if model.task.tracks_pixels else None  # as the CLI: stylize's strokes on the picture

        def frame(rgb):  # (H, W, 3) uint8 -> (H * scale, W * scale, 3) uint8
            extra = model.task.clip_request(rgb, track.coords) if track is not None else {}
            with self.device_lock:
                model.progress = lambda done, tiles: job.check_cancel()  # tiles are not the job's count: frames are
                try:
                    return model.run_arrays([rgb], **request, **extra)[0]
                finally:
                    model.progress = None

        try:
            job.frames_progress(0, total)
            run_clip(src.path, dst, frame, f"studio {job.task} {job.id}",
                     progress=lambda done, _: job.frames_progress(done, total),
                     steady=Steady(judge=model.task.steady_judge), track=track)
            return self.store.add_clip_result(dst, src, stem)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # a cancel or failure leaves no piece behind

    def adapt_settings(self, seconds: float):
        """The budget of a job's `adapt` option (tests replace it with a few fixed steps)."""
        from ..engine.adapt import AdaptSettings

        return AdaptSettings(seconds=seconds)

    def _adapted(self, job: Job, base: Any, pixels: Any, request: dict[str, Any], seconds: float) -> Any:
        """On the worker, under the device lock: the model to run the job with, a copy of `base`
        fine-tuned on the job's image (as the CLI's --adapt, engine/adapt.py; an inpaint mask in
        `request` is cut with it), or `base` itself when the task cannot adapt or the copy loses
        the self-check; job.note says which, in one line. The copy is never cached and the cached
        `base` never changed (adapt() trains a deep copy of its generator). The job's cancel stops
        it at its next step (or the base model's next tile while it prepares)."""
        import torch

        from ..engine.adapt import adapt, pooled_samples

        settings = self.adapt_settings(seconds)
        image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        sampled = {k: v for k, v in request.items() if k != "check_cancel"}  # what the CLI's samples hold
        samples = pooled_samples([job.image], lambda _: (image, sampled), settings)
        job.stage = "adapt"
        base.progress = lambda done, total: job.check_cancel()  # its runs inside adapt() count no tiles
        try:
            used, result = adapt(base, samples, settings, quiet=True, progress=job.adapt_progress)
        finally:
            base.progress = None
        job.adapt_finished(result.kept, _adapt_note(result))
        return used


def _adapt_note(result: Any) -> str:
    """An AdaptResult as the page shows it: "adapted: <what was done>" or "not adapted: <why>"."""
    if result.kept:
        return "adapted: " + result.line().removeprefix("adapt: ").removesuffix("; using the adapted copy")
    if not result.steps:
        return f"not adapted: {result.reason}"
    check = ("" if result.score_base is None or result.score_adapted is None
             else f"; self-check {result.score_base:.3g} -> {result.score_adapted:.3g}")
    return f"not adapted: {result.reason} ({result.steps} steps in {result.seconds:.0f} s{check})"
