"""A batch's run, task-agnostic: reader threads decode the next images, the model runs in the
calling thread (same-sized small images together in one batch), and a writer thread encodes
and writes each result atomically. One line per failure, a summary at the end; inputs are never
written to; SIGTERM finishes what is under way and stops.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from ..io.formats import DEFAULT_MAX_PIXELS
from ..io.images import LoadedImage, read_image, remove_stale_partials, write_image
from .plan import Job
from .report import Result, Summary


Process = Callable[[list[LoadedImage]], list[np.ndarray]]


@dataclass(frozen=True)
class RunOptions:
    overwrite: bool = False
    quiet: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = 95
    batch: int = 8  # images per model call when they share a size
    batch_max_pixels: int = 512 * 512  # only images this small are batched together
    readers: int = 2  # decoding threads
    prefetch: int = 4  # decoded images waiting for the model at most


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Stop:
    """Turns SIGTERM into a graceful stop (finish writing, report, exit)."""

    def __init__(self):
        self.flag = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.flag = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


def _is_output(dst: Path) -> bool:
    """An existing, non-empty file: a 0-byte file (a crash, a touch) is no result and is redone."""
    try:
        return dst.stat().st_size > 0 or not dst.is_file()
    except OSError:
        return False


def run_jobs(jobs: list[Job], process: Process, options: RunOptions = RunOptions(),
             problems: list[tuple[Path, str]] | None = None,
             precheck: Callable[[Job, LoadedImage], None] | None = None,
             after_batch: Callable[[int], None] | None = None) -> Summary:
    """Process every job; one 'error: <path>: <reason>' line per failure on stderr.
    `precheck(job, image)` may refuse an image once it is read, before the model sees it, by
    raising ValueError (e.g. an output too large for its format). `after_batch(n)` is called
    with the count of images the model has processed so far, once each batch's writes are
    handed to the writer (a known point: tests stop the process there)."""
    o = options
    summary = Summary()
    for path, reason in problems or []:
        summary.results.append(Result(str(path), "", "failed", reason))
        print(f"error: {path}: {reason}", file=sys.stderr)
    by_folder: dict[Path, set[str]] = {}
    for j in jobs:
        by_folder.setdefault(j.dst.parent, set()).add(j.dst.name)
    for folder, names in by_folder.items():  # temporary files a killed earlier run left behind
        remove_stale_partials(folder, names)

    todo = []
    for j in jobs:
        if j.skip:
            summary.results.append(Result(str(j.src), str(j.dst), "skipped", j.skip))
        elif _is_output(j.dst) and not o.overwrite:
            summary.results.append(Result(str(j.src), str(j.dst), "skipped", "output exists"))
        else:
            todo.append(j)
    start = time.time()
    bar = tqdm(total=len(todo), disable=o.quiet or len(todo) < 2, unit="img", dynamic_ncols=True, file=sys.stderr)

    def fail(job: Job, reason: str) -> None:
        summary.results.append(Result(str(job.src), str(job.dst), "failed", reason))
        tqdm.write(f"error: {job.src}: {reason}", file=sys.stderr)

    readers = ThreadPoolExecutor(max(1, o.readers), thread_name_prefix="read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="write")
    pending_reads: deque[tuple[Job, Future]] = deque()
    pending_writes: deque[tuple[Job, Future, float, float]] = deque()
    next_job = 0

    def fill() -> None:
        nonlocal next_job
        while next_job < len(todo) and len(pending_reads) < o.prefetch:
            job = todo[next_job]
            pending_reads.append((job, readers.submit(read_image, job.src, o.max_pixels)))
            next_job += 1

    def drain_writes(block: bool) -> None:
        while pending_writes and (block or pending_writes[0][1].done()):
            job, fut, t0, mp = pending_writes.popleft()
            try:
                fut.result()
                summary.results.append(Result(str(job.src), str(job.dst), "done", seconds=time.time() - t0,
                                              megapixels=mp))
            except OSError as exc:
                fail(job, f"cannot write {job.dst}: {exc.strerror or _reason(exc)}")
            except ValueError as exc:
                fail(job, _reason(exc))
            bar.update(1)

    interrupted = False
    processed = 0
    with _Stop() as stop:
        try:
            fill()
            while pending_reads:
                if stop.flag:
                    raise KeyboardInterrupt
                group: list[tuple[Job, LoadedImage]] = []
                t0 = time.time()
                while pending_reads:  # gather images of one small size into a batch
                    job, fut = pending_reads[0]
                    try:
                        img = fut.result()
                        if precheck is not None:
                            precheck(job, img)
                    except (ValueError, OSError) as exc:  # ImageReadError included
                        pending_reads.popleft()
                        fail(job, _reason(exc))
                        bar.update(1)
                        fill()
                        continue
                    shape = (img.pixels.shape, img.pixels.dtype)
                    small = img.pixels.shape[0] * img.pixels.shape[1] <= o.batch_max_pixels
                    if group and (not small or shape != (group[0][1].pixels.shape, group[0][1].pixels.dtype)):
                        break
                    pending_reads.popleft()
                    group.append((job, img))
                    fill()
                    if not small or len(group) >= o.batch:
                        break
                if not group:
                    continue
                try:
                    outputs = process([img for _, img in group])
                except (ValueError, RuntimeError, OSError) as exc:
                    for job, _ in group:
                        fail(job, _reason(exc))
                        bar.update(1)
                    continue
                for (job, img), result in zip(group, outputs):
                    mp = img.pixels.shape[0] * img.pixels.shape[1] / 1e6
                    fut = writer.submit(write_image, job.dst, result, o.jpeg_quality, img.icc, img.exif)
                    pending_writes.append((job, fut, t0, mp))
                processed += len(outputs)
                del group, outputs
                if after_batch is not None:
                    after_batch(processed)
                drain_writes(block=len(pending_writes) > 2)  # bound the results waiting in memory
        except KeyboardInterrupt:
            interrupted = True
            tqdm.write("interrupted: finishing the outputs already computed; rerun the same command to go on",
                       file=sys.stderr)
        finally:
            for _, fut in pending_reads:
                fut.cancel()
            readers.shutdown(wait=True, cancel_futures=True)
            drain_writes(block=True)
            writer.shutdown(wait=True)
            bar.close()
    done = {r.src for r in summary.results}
    for j in todo:
        if str(j.src) not in done:
            summary.results.append(Result(str(j.src), str(j.dst), "interrupted"))
    summary.interrupted = interrupted
    summary.seconds = time.time() - start
    return summary
