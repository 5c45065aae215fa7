"""One clip through a model, in pieces that survive an interruption (issue 33).

    run_clip(src, dst, process, fingerprint="denoise sigma=None ...", codec=None, crf=None)

The frames are processed in order and encoded in pieces of `piece_frames(rate)` frames (at
least 16, about a second), each a file of its own in a hidden folder beside the output,
`.<name>.parts/`, renamed into place when whole. A rerun of the same command (the same source
file, unchanged, and the same `fingerprint`: the model and its options) finds the finished
pieces and starts at the first missing one; anything else starts over. When every piece is
there they are joined packet for packet with the source's sound, subtitles and chapters into
the output (through a hidden file), and the folder is removed.

Every run encodes in the same pieces, each starting at a keyframe, without B-frames: an
interrupted and resumed run writes the same bytes as an uninterrupted one.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..io.atomic import write_atomic
from ..io.video import ClipInfo, ClipWriter, assemble, check_output, check_streams, count_frames, frames, probe

MIN_PIECE = 16


def piece_frames(info: ClipInfo) -> int:
    """Frames a piece: a second's worth, at least MIN_PIECE."""
    return max(MIN_PIECE, math.ceil(float(info.rate or 0)))


@dataclass
class ClipResult:
    frames: int  # frames in the clip
    processed: int  # frames this run wrote (the rest were in finished pieces, or another shard's)
    pieces: int
    joined: bool = True  # False: a shard whose output another shard joins


def parts_folder(dst: Path) -> Path:
    return dst.parent / f".{dst.name}.parts"


def _state(src: Path, fingerprint: str, codec: str | None, crf: int | None, piece: int, chroma: str | None) -> dict:
    st = src.stat()  # the source by name, size and time, not path: shares on machines that mount it elsewhere agree
    return {"source": src.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "command": fingerprint,
            "codec": codec, "crf": crf, "chroma": chroma, "piece": piece}


def run_clip(src: Path, dst: Path, process: Callable[[np.ndarray], np.ndarray], fingerprint: str,
             codec: str | None = None, crf: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             steady: Callable | None = None, shard: tuple[int, int] | None = None,
             chroma: str | None = None, track: Callable | None = None) -> ClipResult:
    """Process every frame of `src` with `process` ((H, W, 3) uint8 -> (H', W', 3) uint8) into
    `dst`, resuming a folder of finished pieces left by the same command. `progress(done, total)`
    after each frame (total 0 where the container does not say). `steady([(earlier input, its
    output)...], (this input, its output))` (vitrestore/steady.py) evens each frame against the
    ones before; a piece's `window` frames before it are processed again where they were not.
    `shard=(k, n)`: only the pieces i with i % n == k - 1 (n processes share one clip through one
    folder); the one that finds every piece there joins them (`joined` False for the others).
    `track` (vitrestore/motion.py's PixelTrack): `track.start()`, then `track(rgb)` for every frame
    from the first, in order, before the frame is processed (a state that runs through the whole
    clip; `process` reads it): a resumed clip or a share decodes from the first frame and runs the
    track alone over the frames before its work (flow only, no model)."""
    src, dst = Path(src), Path(dst)
    check_output(dst, codec, crf)
    info = probe(src)
    check_streams(src, dst)  # (its sound fits the output's container: found now, not at the join)
    piece = piece_frames(info)
    folder = parts_folder(dst)
    state = _state(src, f"{fingerprint} steady={steady!r} track={track!r}", codec, crf, piece, chroma)
    manifest = folder / "state.json"
    if folder.exists():
        try:
            same = json.loads(manifest.read_text()) == state
        except (OSError, ValueError):
            same = False
        if not same:  # another command or another source: its pieces are of no use
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)  # (and the -o folder it is in)
    write_atomic(manifest, json.dumps(state, indent=1))
    name = lambda i: folder / f"piece-{i:06d}{dst.suffix.lower()}"  # noqa: E731
    mine = lambda i: shard is None or i % shard[1] == shard[0] - 1  # noqa: E731
    todo = lambda i: mine(i) and not name(i).exists()  # noqa: E731
    back = steady.window if steady is not None else 0
    first = 0  # the first piece this run makes (beyond the clip's end when all are made)
    while not todo(first):
        first += 1
    pieces = math.ceil(info.frames / piece) if info.frames else None  # (None: the container does not say)
    last_todo = max((k for k in range(pieces) if todo(k)), default=-1) if pieces is not None else None
    tracking = track is not None and (last_todo is None or last_todo >= first)  # (no piece to make: no track)
    start = 0 if tracking else max(first * piece - back, 0)
    if tracking:
        track.start()
    processed, total, last = 0, info.frames, -1
    writer: ClipWriter | None = None
    writer_piece = -1
    previous: list = []  # the frames before and their outputs, for `steady` (consecutive only)
    try:
        for frame in frames(src, start=start):
            i, last = frame.index // piece, frame.index
            wanted = todo(i) or (back and todo(i + 1) and frame.index >= (i + 1) * piece - back)
            if writer is not None and writer_piece != i:  # the piece is whole
                writer.__exit__(None, None, None)
                writer = None
            # every frame in order up to this run's last piece (and past the count the container
            # gave, which may be short): the track's state runs through the clip
            if tracking and (last_todo is None or i <= last_todo or i >= pieces):
                track(frame.rgb)
            if not wanted:
                previous = []  # a gap: no earlier frame joins the next one processed
                continue
            out = process(frame.rgb)
            shown = steady(previous, (frame.rgb, out)) if steady is not None else out
            previous = (previous + [(frame.rgb, out)])[-back:] if back else []
            if not todo(i):  # a frame before a piece to make: only its output was wanted
                continue
            if writer is None:
                writer = ClipWriter(name(i), info, codec, crf, keyint=piece, part=True, chroma=chroma)
                writer_piece = i
            writer.write(frame, shown)
            processed += 1
            if progress is not None:
                progress(frame.index + 1, total)
        if writer is not None:
            writer.__exit__(None, None, None)
            writer = None
    except BaseException as exc:
        if writer is not None:
            writer.__exit__(type(exc), exc, None)  # the unfinished piece is removed; finished ones stay
        if shard is None and not _exists_any(folder):  # (a share leaves the folder to the others at work)
            shutil.rmtree(folder, ignore_errors=True)  # nothing finished: nothing left behind
        raise
    if last < 0:  # every frame was before `start`: count them without decoding
        last = count_frames(src) - 1
    count = last // piece + 1 if last >= 0 else 0
    if not all(name(i).exists() for i in range(count)):
        return ClipResult(last + 1, processed, count, joined=False)  # other shards' pieces to come
    lock = _join_lock(folder)  # one process joins; a killed joiner's lock goes with it
    if lock is None or not all(name(i).exists() for i in range(count)):  # (or another joined meanwhile)
        if lock is not None:
            os.close(lock)
        return ClipResult(last + 1, processed, count, joined=False)
    try:
        assemble([name(i) for i in range(count)], src, dst)  # (through a hidden file, renamed into place)
        shutil.rmtree(folder)
    finally:
        os.close(lock)
    return ClipResult(last + 1, processed, count)


def _join_lock(folder: Path) -> int | None:
    """A descriptor holding an exclusive flock on <folder>/join.lock, or None while another
    process holds it (or the folder is gone: another process joined the clip). The kernel drops
    the lock of a process that dies, so a joiner killed mid-join blocks no later run."""
    try:
        fd = os.open(folder / "join.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _exists_any(folder: Path) -> bool:
    """Whether a finished piece is in the folder."""
    return any(folder.glob("piece-*"))


def run_clip_jobs(jobs: list, process: Callable[[Path, np.ndarray], np.ndarray], fingerprint: str,
                  overwrite: bool = False, quiet: bool = False, codec: str | None = None,
                  crf: int | None = None, max_pixels: int | None = None, steady=None,
                  shard: tuple[int, int] | None = None, chroma: str | None = None, track=None) -> list:
    """The batch's clips (plan.Job with a video source), one after another, each resumable;
    `process(clip path, rgb) -> rgb` runs the model on a frame (`track`: run_clip's, started
    anew for each clip). Returns one report.Result a clip (batch/each.py); one 'error: <clip>:
    <reason>' line a failure. KeyboardInterrupt stops at once (the finished pieces are kept: the
    same command resumes)."""
    import sys  # noqa: PLC0415

    import av  # noqa: PLC0415
    import cv2  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from ..io.video import VideoError  # noqa: PLC0415
    from .each import run_each  # noqa: PLC0415

    def work(job) -> float | str:
        info = probe(job.src)
        if max_pixels is not None and info.width * info.height > max_pixels:
            raise VideoError(f"its frames are {info.width}x{info.height} ({info.width * info.height / 1e6:.1f} "
                             f"MP), over --max-megapixels {max_pixels / 1e6:g}")
        bar = tqdm(total=info.frames or None, disable=quiet, unit="frame", dynamic_ncols=True, file=sys.stderr,
                   desc=job.src.name)
        try:
            done = run_clip(job.src, job.dst, lambda rgb: process(job.src, rgb), fingerprint, codec, crf,
                            progress=lambda n, total: bar.update(n - bar.n), steady=steady, shard=shard,
                            chroma=chroma, track=track)
        finally:
            bar.close()
        if not done.joined:
            return (f"share {shard[0]}/{shard[1]} of its pieces done; the share that finishes last joins the clip"
                    if shard else "joined by another run")
        return done.frames * info.width * info.height / 1e6

    return run_each(jobs, work, overwrite, (VideoError, OSError, ValueError, RuntimeError, av.FFmpegError, cv2.error))
