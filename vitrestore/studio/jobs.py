"""The studio's work queue: one worker thread runs one model call at a time (one device), the
rest wait in a bounded queue; a full queue refuses new work (HTTP 429). Jobs report tiles done
(or, while adapting the model to their image first, adaptation steps done; a clip's job, frames
done) and can be cancelled, queued or running (a running one stops at its next tile, frame or
adaptation step, or at the next round of inpainting's texture step). `stop` cancels every job
and waits for the worker, so the process never exits while a model call runs on another thread."""
from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable


class Cancelled(Exception):
    pass


class QueueFull(Exception):
    pass


@dataclass
class Job:
    task: str
    options: dict[str, Any]
    image: str  # the input image's id
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "queued"  # queued, running, done, failed, cancelled
    done: int = 0  # tiles done in the current pass
    total: int = 0
    passes: int = 0  # network passes started (ensemble members, inpaint's coarse + fine)
    stage: str = "run"  # "adapt" while a copy of the model is fine-tuned on the image (done/total: steps);
    # "frames" while a clip runs (done/total: frames)
    adapted: bool | None = None  # after an adaptation: whether the adapted copy was used
    note: str | None = None  # after an adaptation: what happened, in one line ("adapted: ..." / "not adapted: ...")
    error: str | None = None
    result: str | None = None  # the result image's id
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def progress(self, done: int, total: int) -> None:
        """Called by the model after each network call; raises Cancelled once cancel is set."""
        if done <= self.done or self.total != total:
            self.passes += 1
        self.done, self.total = done, total
        self.check_cancel()

    def adapt_progress(self, step: int, total: int) -> None:
        """Called by the adaptation after each step; raises Cancelled once cancel is set."""
        self.stage, self.done, self.total = "adapt", step, total
        self.check_cancel()

    def frames_progress(self, done: int, total: int) -> None:
        """Called after each frame of a clip; raises Cancelled once cancel is set."""
        self.stage, self.done, self.total, self.passes = "frames", done, total, 1
        self.check_cancel()

    def adapt_finished(self, adapted: bool, note: str) -> None:
        """The adaptation is over: the progress counts tiles again, from none."""
        self.adapted, self.note = adapted, note
        self.stage, self.done, self.total = "run", 0, 0

    def check_cancel(self) -> None:
        """Raises Cancelled once cancel is set (called between steps that report no tiles)."""
        if self.cancel.is_set():
            raise Cancelled()

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "image": self.image, "status": self.status,
                "progress": {"done": self.done, "total": self.total, "passes": self.passes, "stage": self.stage},
                "adapted": self.adapted, "note": self.note, "error": self.error, "result": self.result}


class JobQueue:
    """`run(job)` is called on the worker thread for each job, in order; it returns the result id."""

    def __init__(self, run: Callable[[Job], str], size: int = 8, keep: int = 200):
        self._run, self._queue = run, queue.Queue(maxsize=size)
        self.jobs: dict[str, Job] = {}
        self._keep = keep
        self._lock = threading.Lock()
        self.paused = threading.Event()  # set: the worker waits before its next job (tests, shutdown)
        self.holding = threading.Event()  # set while the paused worker holds a job it took off the queue
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._loop, name="vitrestore-studio-worker", daemon=True)
        self._worker.start()

    def submit(self, job: Job) -> Job:
        with self._lock:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise QueueFull(f"the queue is full ({self._queue.maxsize} jobs waiting); try again when one "
                                f"has finished") from None
            self.jobs[job.id] = job
            self._forget_old()
        return job

    def cancel(self, job_id: str) -> Job:
        return self._cancel(self.jobs[job_id])

    @staticmethod
    def _cancel(job: Job) -> Job:
        job.cancel.set()
        if job.status == "queued":
            job.status = "cancelled"
        return job

    def stop(self, timeout: float = 60) -> bool:
        """Cancel every job, stop the worker and wait for it (at most `timeout` s); whether it stopped."""
        self._stop.set()
        for job in list(self.jobs.values()):
            self._cancel(job)
        self.paused.clear()
        try:
            self._queue.put_nowait(None)  # wake the worker
        except queue.Full:
            pass
        if self._worker is not threading.current_thread():
            self._worker.join(timeout)
        return not self._worker.is_alive()

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in ("done", "failed", "cancelled")]
        for j in sorted(finished, key=lambda j: j.created)[: max(0, len(self.jobs) - self._keep)]:
            del self.jobs[j.id]

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self._queue.get()
            while self.paused.is_set() and not self._stop.is_set():
                self.holding.set()
                time.sleep(0.02)
            self.holding.clear()
            if job is None:
                continue
            if self._stop.is_set():
                job.status = "cancelled"
                continue
            if job.cancel.is_set():
                job.status = "cancelled"
                continue
            job.status = "running"
            try:
                job.result = self._run(job)
                job.status = "done"
            except Cancelled:
                job.status = "cancelled"
            except Exception as exc:  # noqa: BLE001  (any failure is the job's, reported in one line)
                text = str(exc).strip().splitlines()
                job.error = text[0] if text else type(exc).__name__
                job.status = "failed"
