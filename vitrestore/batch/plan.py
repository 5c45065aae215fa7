"""A batch's plan: the user's inputs turned into (source, destination) jobs and the problems
found before any work starts (missing paths, unreadable folders, symlink loops, outputs that
would overwrite an input, a --report or --adapt-save that would), with no model in sight.

Output naming:
    file, no -o            ->  <dir>/<stem>_<suffix><ext>        beside the input
    folder, no -o          ->  the same, beside each image (files already named *_<suffix> are skipped)
    -o DIR inside a folder ->  files under DIR are outputs, never inputs (a rerun does not nest)
    -o DIR                 ->  DIR/<path relative to the input folder, with <ext>>  (mirrors the structure)
    one file, -o FILE.ext  ->  exactly FILE.ext
<ext> is the input's unless a format is given. A file given twice (or a folder and a file in
it) runs once. An -o that fits neither (an existing file, or a file name, with a folder input
or several inputs; an image format that cannot be written) is an error before any work. Two
inputs that would get one output name (a.png and a.jpg with --format png) are both renamed to
carry their own extension: a-png_..., a-jpg_...

Sharding: `shard=(k, n)` keeps the jobs whose source path hashes to k-1 modulo n, so n processes
(or machines, or a job array) split a folder without talking to each other.
"""
from __future__ import annotations

import errno
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..io.animated import ANIMATED_SUFFIXES, is_animation
from ..io.formats import FORMATS, IMAGE_SUFFIXES, WRITABLE_SUFFIXES
from ..io.video import VIDEO_SUFFIXES

MOVING_SUFFIXES = (*VIDEO_SUFFIXES, ".gif", ".apng")  # clips and animated images, whatever they hold


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    skip: str = ""  # a reason to count this file as skipped without reading it


def report_problem(report: Path, jobs: list[Job], protect: tuple[Path, ...] = (),
                   option: str = "--report") -> str | None:
    """Why a file the run writes besides its outputs (`option`: the --report, --adapt-save) may
    not be written at `report`: it is an input or an output of the run."""
    target = report.expanduser().resolve()
    for j in jobs:
        if target == j.src.resolve():
            return f"{report}: {option} would overwrite the input {j.src}"
        if _inside(j.dst.resolve(), target):
            return f"{report}: {option} would overwrite the output {j.dst}" + (
                "" if target == j.dst.resolve() else f" (its folder {report})")
    for p in protect:
        if target == p.expanduser().resolve():
            return f"{report}: {option} would overwrite the input {p}"
    return None


# --- planning ----------------------------------------------------------------------------------
def _is_image(p: Path) -> bool:
    """An input a command takes: an image, an animated image (GIF, APNG) or a video clip
    (VIDEO_SUFFIXES, vitrestore/io/video.py)."""
    return p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() in MOVING_SUFFIXES


def is_clip(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_SUFFIXES


def keeps_suffix(p: Path) -> bool:
    """Inputs whose output keeps their format whatever --format says: clips and animations."""
    return p.suffix.lower() in MOVING_SUFFIXES


def walk_images(folder: Path, recursive: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files under `folder` (sorted) and the folders that could not be walked, with reasons.

    Symlinked folders are followed once: a link back to a folder already seen is reported as a
    loop and skipped.
    """
    problems: list[tuple[Path, str]] = []
    files: list[Path] = []
    seen: dict[tuple[int, int], Path] = {}

    def visit(d: Path) -> None:
        try:
            st = d.stat()
        except OSError as exc:
            problems.append((d, f"cannot read folder ({exc.strerror or exc})"))
            return
        key = (st.st_dev, st.st_ino)
        if key in seen:
            problems.append((d, f"symlink loop: same folder as {seen[key]}; not followed"))
            return
        seen[key] = d
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            problems.append((d, f"cannot read folder ({exc.strerror or exc})"))
            return
        subdirs = []
        for e in entries:
            p = Path(e.path)
            if e.name.startswith("."):  # hidden: a clip's unfinished pieces and temporary files
                continue  # (.<name>.parts/, .<name>.XXXX.mp4), macOS's ._photo.jpg; never inputs
            try:
                if e.is_dir():  # follows symlinks
                    subdirs.append(p)
                elif _is_image(p) and e.is_file():
                    files.append(p)
                elif _is_image(p):  # named like an image but unusable: each fails with its reason
                    problems.append((p, _missing_reason(p) if not p.exists() else
                                     "not a regular file (a FIFO, device or socket)"))
            except OSError as exc:
                problems.append((p, f"cannot access ({exc.strerror or exc})"))
        if recursive:
            for sub in subdirs:
                visit(sub)

    visit(folder)
    return files, problems


def _out_suffix(src: Path, fmt: str | None) -> str:
    """The output's extension: --format's for an image, a clip's own (--format names image formats)."""
    if not fmt or keeps_suffix(src):
        return src.suffix
    target = FORMATS[fmt.lower().lstrip(".")]
    if target not in ANIMATED_SUFFIXES and is_animation(src):  # an animated PNG/WebP: frames go in no JPEG
        return src.suffix
    return target


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'K/N' (1 <= K <= N) -> (K, N)."""
    if not text:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def in_shard(src: Path, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(str(src).encode()) % n == k - 1


def _missing_reason(src: Path) -> str:
    """Why an input that does not exist is missing: nothing there, a dangling link, or a link loop."""
    try:
        os.stat(src)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop (the link points back to itself)"
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"cannot access ({exc.strerror})"
    return "no such file or folder" + (" (broken symlink)" if src.is_symlink() else "")


NAME_MAX = 255  # bytes in one file name on every common file system


def _name_bytes(name: str) -> int:
    """A file name's length as the file system counts it (bytes; undecodable ones kept as they are)."""
    return len(name.encode("utf-8", "surrogateescape"))

# image formats we cannot write: "-o out.gif" is meant as a file, not a folder to create
OTHER_IMAGE_SUFFIXES = {".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ico", ".psd", ".dng", ".svg", ".pdf"}


def _check_output(inputs: list[Path], out: Path | None) -> bool:
    """Whether -o names one output file; raises ValueError (before any work) for an -o that fits
    neither a file nor a folder: a file that exists or looks like an image name, given a folder
    or several inputs, or a file name in a format that cannot be written."""
    if out is None:
        return False
    for size in map(_name_bytes, out.parts):
        if size > NAME_MAX:
            raise ValueError(f"{out}: -o has a name of {size} bytes (file systems allow {NAME_MAX})")
    one_file = len(inputs) == 1 and inputs[0].is_file()
    if out.is_dir():
        return False
    if out.exists() and not one_file:
        raise ValueError(f"{out}: -o is an existing file; with a folder or several inputs, -o names a folder")
    if not out.exists() and out.suffix.lower() not in IMAGE_SUFFIXES | OTHER_IMAGE_SUFFIXES | set(VIDEO_SUFFIXES):
        return False  # a folder to create (documented: -o DIR mirrors the inputs); "v1.2" is a folder too
    if not one_file:
        what = "a folder input" if any(p.is_dir() for p in inputs) else f"{len(inputs)} inputs"
        raise ValueError(f"{out}: -o looks like a file name, but there is {what}; give a folder for -o")
    if is_clip(inputs[0]) != is_clip(out):
        raise ValueError(f"{out}: -o for {'a clip' if is_clip(inputs[0]) else 'an image'} must be "
                         f"{'a video (' + ', '.join(VIDEO_SUFFIXES) + ')' if is_clip(inputs[0]) else 'an image'}")
    if out.suffix.lower() not in WRITABLE_SUFFIXES and not (keeps_suffix(out) and keeps_suffix(inputs[0])):
        raise ValueError(f"{out}: cannot write {out.suffix} files (writable: {', '.join(sorted(WRITABLE_SUFFIXES))})")
    return True


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents



def unwritable_reason(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (or, when it does not exist yet, in the nearest
    existing folder above it, where it would be made), or None. Probed with an unnamed temporary
    file, so a read-only mount is caught as well as permissions."""
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"folder {probe} is not writable ({exc.strerror or exc})"
    return None


def _name_problem(dst: Path) -> str | None:
    size = _name_bytes(dst.name)
    if size <= NAME_MAX:
        return None
    return (f"output name {dst.name[:40]}... is {size} bytes long (file systems allow {NAME_MAX}); rename the "
            f"input or give -o FILE")


def _output_problem(dst: Path, checked: dict[Path, str | None]) -> str | None:
    """What makes `dst` impossible to write, known before any work: a folder in its place, a
    folder that cannot be written (checked once per folder)."""
    if dst.is_dir():
        return f"output {dst} is a folder; move it away or give another -o"
    if dst.parent not in checked:
        checked[dst.parent] = unwritable_reason(dst.parent)
    reason = checked[dst.parent]
    return f"cannot write {dst}: {reason}" if reason else None


def plan_jobs(inputs: list[str | Path], output: str | Path | None, suffix: str, recursive: bool = False,
              fmt: str | None = None, shard: tuple[int, int] | None = None, exclude: tuple[Path, ...] = (),
              protect: tuple[Path, ...] = ()) -> tuple[list[Job], list[tuple[Path, str]]]:
    """(jobs, problems) for the given inputs; problems are (path, reason) found up front.
    Files under the -o folder or an `exclude` folder (e.g. inpainting's mask folder) inside an
    input folder are never inputs. No output may replace an input image, a `protect`ed file
    (e.g. the mask) or a file in an `exclude` folder. Raises ValueError for an -o that cannot
    work (see _check_output; -o naming an input folder; a folder that cannot be written)."""
    jobs: list[Job] = []
    problems: list[tuple[Path, str]] = []
    out = Path(output).expanduser() if output is not None else None
    paths = [Path(raw).expanduser() for raw in inputs]
    single_file_target = _check_output(paths, out)
    out_real = out.resolve() if out is not None else None
    if out_real is not None:
        for src in paths:
            if src.is_dir() and src.resolve() == out_real:
                raise ValueError(f"{out}: -o is the input folder itself: outputs would mix with the inputs and "
                                 f"become inputs of the next run; give another folder, or leave out -o to write "
                                 f"<name>_{suffix} files beside the inputs")
        reason = unwritable_reason(out.parent if single_file_target else out)
        if reason:
            raise ValueError(f"{out}: -o: {reason}")
    not_inputs = [p.expanduser().resolve() for p in exclude] + ([out_real] if out_real is not None else [])
    seen: set[Path] = set()  # the same file given twice (or a folder and a file in it) runs once

    def add(job: Job) -> None:
        key = job.src.resolve()
        if key not in seen:
            seen.add(key)
            jobs.append(job)

    for src in paths:
        if not os.path.lexists(src) or not src.exists():
            problems.append((src, _missing_reason(src)))
            continue
        if src.is_dir():
            files, bad = walk_images(src, recursive)
            problems += bad
            # an -o folder (or a mask folder) inside the input folder: what is in it is never an input
            root = src.resolve()
            skip = [p for p in not_inputs if p != root and _inside(p, root)]
            for f in files:
                if skip and any(_inside(f.resolve(), p) for p in skip):
                    continue
                ext = _out_suffix(f, fmt)
                rel = f.relative_to(src)
                dst = (out / rel).with_suffix(ext) if out else f.with_name(f"{f.stem}_{suffix}{ext}")
                if out is None and f.stem.endswith(f"_{suffix}"):
                    # outputs written beside inputs must not become inputs on a rerun: counted as skipped
                    add(Job(f, dst, skip=f"named *_{suffix}: an output of an earlier run"))
                    continue
                add(Job(f, dst))
            continue
        if not src.is_file():
            problems.append((src, "not a regular file (a FIFO, device or socket)"))
            continue
        ext = _out_suffix(src, fmt)
        if single_file_target:
            dst = out
        elif out is not None:
            dst = out / (src.stem + ext)
        else:
            dst = src.with_name(f"{src.stem}_{suffix}{ext}")
        add(Job(src, dst))
    jobs = _resolve_collisions(jobs, problems)
    sources = {j.src.resolve() for j in jobs if not j.skip} | {p.expanduser().resolve() for p in protect}
    input_folders = [p.expanduser().resolve() for p in exclude if p.is_dir()]
    checked: dict[Path, str | None] = {}
    kept = []
    for j in jobs:
        dst = j.dst.resolve()
        if problem := _name_problem(j.dst):
            problems.append((j.src, problem))
        elif dst in sources or (dst.exists() and any(_inside(dst, f) for f in input_folders)):
            problems.append((j.src, f"output {j.dst} would overwrite an input; choose another -o"))
        elif not in_shard(j.src, shard) and not is_clip(j.src):  # a clip is shared by its pieces (batch/clip.py)
            continue
        elif not j.skip and (problem := _output_problem(j.dst, checked)):
            problems.append((j.src, problem))
        else:
            kept.append(j)
    return kept, [(p, r) for p, r in problems if in_shard(p, shard) or shard is None]


def _resolve_collisions(jobs: list[Job], problems: list[tuple[Path, str]]) -> list[Job]:
    """Jobs whose outputs would share a name get their input's extension in the output name."""
    by_dst: dict[Path, list[Job]] = {}
    for j in jobs:
        by_dst.setdefault(j.dst.resolve(), []).append(j)
    out, taken = [], set()
    for j in jobs:
        group = by_dst[j.dst.resolve()]
        if len(group) == 1:
            out.append(j)
            taken.add(j.dst.resolve())
            continue
        tag = j.src.suffix.lstrip(".").lower()
        stem = j.dst.stem
        # photo_denoised.png -> photo-jpg_denoised.png (the tag goes before the task suffix)
        base, sep, rest = stem.rpartition("_")
        new_stem = f"{base}-{tag}{sep}{rest}" if base else f"{stem}-{tag}"
        dst = j.dst.with_name(new_stem + j.dst.suffix)
        if dst.resolve() in taken or sum(g.src.suffix.lower() == j.src.suffix.lower() for g in group) > 1:
            problems.append((j.src, f"output {j.dst} is also the output of "
                                    f"{', '.join(str(g.src) for g in group if g is not j)}; rename one of them"))
            continue
        taken.add(dst.resolve())
        out.append(Job(j.src, dst))
    return out
