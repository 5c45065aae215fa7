"""A batch's animated images (GIF, APNG, animated WebP: vitrestore/io/animated.py), each frame
through the model as an image is; the output keeps the frame count, durations, loop and
transparency, and is written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..io.animated import AnimationError, read_animation, write_animation
from .each import run_each
from .report import Result


def run_animation_jobs(jobs: list, process: Callable[[Path, np.ndarray], np.ndarray], overwrite: bool = False,
                       max_pixels: int | None = None) -> list[Result]:
    """One Result an animation (plan.Job); one 'error: <path>: <reason>' line a failure."""

    def work(job) -> float:
        anim = read_animation(job.src, max_pixels)
        out = [process(job.src, f) for f in anim.frames]
        if len({f.shape for f in out}) != 1:
            raise AnimationError("the frames came out in different sizes")
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        write_animation(job.dst, anim, out)
        h, w = anim.frames[0].shape[:2]
        return len(anim.frames) * h * w / 1e6

    return run_each(jobs, work, overwrite, (AnimationError, OSError, ValueError, RuntimeError))
