"""A batch's clips and animations, one file after another (vitrestore/batch/clip.py,
animation.py): the skips, the timing, and a failure as that file's one line, in one place."""
from __future__ import annotations

import sys
import time
from typing import Callable

from .report import Result


def run_each(jobs: list, work: Callable, overwrite: bool, errors: tuple[type[BaseException], ...]) -> list[Result]:
    """One Result a job (plan.Job): skipped as planned or where its output exists (unless
    `overwrite`); else `work(job)` -> the megapixels written, or a reason (str) the job is
    skipped after all. An exception of `errors` fails that job alone, with one
    'error: <path>: <reason>' line; any other (KeyboardInterrupt) stops the batch."""
    results = []
    for job in jobs:
        if job.skip:
            results.append(Result(str(job.src), str(job.dst), "skipped", job.skip))
            continue
        if job.dst.exists() and job.dst.stat().st_size > 0 and not overwrite:
            results.append(Result(str(job.src), str(job.dst), "skipped", "output exists"))
            continue
        start = time.time()
        try:
            done = work(job)
        except errors as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            results.append(Result(str(job.src), str(job.dst), "failed", reason, time.time() - start))
            print(f"error: {job.src}: {reason}", file=sys.stderr)
            continue
        if isinstance(done, str):
            results.append(Result(str(job.src), str(job.dst), "skipped", done))
        else:
            results.append(Result(str(job.src), str(job.dst), "done", "", time.time() - start, done))
    return results
