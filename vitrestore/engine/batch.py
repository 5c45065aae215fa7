"""Batch processing over files and folders, task-agnostic.

`plan_jobs` turns the user's inputs into (source, destination) pairs and the problems found
before any work starts; `run_jobs` processes them one by one with a progress bar, reports one
line per failure, never writes over an input, and writes every output atomically.

Output naming:
    file, no -o            ->  <dir>/<stem>_<suffix><ext>        beside the input
    folder, no -o          ->  the same, beside each image (files already named *_<suffix> are skipped)
    -o DIR                 ->  DIR/<path relative to the input folder>  (mirrors the structure)
    one file, -o FILE.ext  ->  exactly FILE.ext
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from ..data import IMAGE_SUFFIXES
from ..io import DEFAULT_MAX_PIXELS, ImageReadError, LoadedImage, read_image, write_image


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    megapixels: float = 0.0

    def line(self) -> str:
        rate = f", {self.megapixels / self.seconds:.3f} MP/s" if self.seconds and self.megapixels else ""
        return (f"done: {self.done} written, {self.skipped} skipped (output exists), {len(self.failed)} failed "
                f"in {self.seconds:.1f} s{rate}")


def _scan(folder: Path, recursive: bool, suffix: str, beside: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    files = sorted(p for p in pattern if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if beside:  # outputs written beside inputs must not become inputs on a rerun
        files = [p for p in files if not p.stem.endswith(f"_{suffix}")]
    return files


def plan_jobs(inputs: list[str | Path], output: str | Path | None, suffix: str, recursive: bool = False,
              ) -> tuple[list[Job], list[tuple[Path, str]]]:
    """(jobs, problems) for the given inputs; problems are (path, reason) found up front."""
    jobs: list[Job] = []
    problems: list[tuple[Path, str]] = []
    out = Path(output).expanduser() if output is not None else None
    single_file_target = (
        out is not None and len(inputs) == 1 and Path(inputs[0]).is_file()
        and out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir()
    )
    for raw in inputs:
        src = Path(raw).expanduser()
        if not src.exists():
            problems.append((src, "no such file or folder"))
            continue
        if src.is_dir():
            for f in _scan(src, recursive, suffix, beside=out is None):
                dst = (out / f.relative_to(src)) if out else f.with_name(f"{f.stem}_{suffix}{f.suffix}")
                jobs.append(Job(f, dst))
            continue
        if single_file_target:
            dst = out
        elif out is not None:
            dst = out / src.name
        else:
            dst = src.with_name(f"{src.stem}_{suffix}{src.suffix}")
        jobs.append(Job(src, dst))
    seen: dict[Path, Path] = {}
    sources = {j.src.resolve() for j in jobs}
    kept = []
    for j in jobs:
        key = j.dst.resolve()
        if key in sources:
            problems.append((j.src, f"output {j.dst} would overwrite an input; choose another -o"))
        elif key in seen:
            problems.append((j.src, f"output {j.dst} is also the output of {seen[key]}; rename one of them"))
        else:
            seen[key] = j.src
            kept.append(j)
    return kept, problems


def run_jobs(jobs: list[Job], process: Callable[[LoadedImage], np.ndarray], overwrite: bool = False,
             quiet: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
             problems: list[tuple[Path, str]] | None = None) -> Summary:
    """Process every job; one 'error: <path>: <reason>' line per failure on stderr."""
    summary = Summary(failed=list(problems or []))
    for path, reason in summary.failed:
        print(f"error: {path}: {reason}", file=sys.stderr)
    start = time.time()
    bar = tqdm(jobs, disable=quiet or len(jobs) < 2, unit="img", dynamic_ncols=True, file=sys.stderr)
    for job in bar:
        if job.dst.exists() and not overwrite:
            summary.skipped += 1
            continue
        try:
            img = read_image(job.src, max_pixels=max_pixels)
            result = process(img)
            write_image(job.dst, result)
        except ImageReadError as exc:
            summary.failed.append((job.src, str(exc)))
            tqdm.write(f"error: {job.src}: {exc}", file=sys.stderr)
            continue
        except (ValueError, RuntimeError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            summary.failed.append((job.src, reason))
            tqdm.write(f"error: {job.src}: {reason}", file=sys.stderr)
            continue
        summary.done += 1
        summary.megapixels += img.pixels.shape[0] * img.pixels.shape[1] / 1e6
    summary.seconds = time.time() - start
    return summary
