"""A training run's folder: what the trainer writes, and nothing else writes.

    <out>/vitrestore-run.json  the marker, written when the run is created: it says the folder
                               is a vitrestore run (format, run id, task, time)
    <out>/vitrestore-run.lock  locked (flock) while a run uses the folder; never removed
    <out>/config.yaml          the resolved config
    <out>/checkpoint.pt        latest full training state (atomic replace)
    <out>/weights.safetensors  EMA generator + config + card (what inference loads)
    <out>/MODEL_CARD.md        the card in words
    <out>/metrics.jsonl        one JSON object per log/validation event
    <out>/samples/step_N.png   validation grids: input | output | real sample
    <out>/tensorboard/         the same scalars, when tensorboard is installed
    <out>/stage-k/             a recipe's earlier stages, each a run folder of its own

A folder is *ours* when it holds a valid marker (or, written before markers existed, a
checkpoint.pt that loads as a vitrestore checkpoint); file names alone never make it ours. A
fresh run goes only into a new or empty folder, or one of ours; it clears only what the layout
above names (never a stage-k run, never anything else), and only with --force, or when the
folder holds a start that saved no checkpoint (nothing there can be resumed). Anything else in
the folder stops it, before anything is changed.

One run at a time: the main process (rank 0) holds an exclusive `flock` on the lock file from
before it changes anything until it has written its last file; the operating system releases
it when the process ends, however it ends. Only the main process writes; every write of a file
other than metrics.jsonl is atomic, and metrics.jsonl gets whole lines only. A folder is
changed only once `start` is called, after a run's setup has succeeded.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import ConfigError
from ..io.atomic import write_atomic
from ..weights import render_card, save_weights
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint

MARKER = "vitrestore-run.json"
LOCK = "vitrestore-run.lock"
MARKER_FORMAT = "vitrestore run folder"
RUN_FILES = ("config.yaml", "checkpoint.pt", "weights.safetensors", "MODEL_CARD.md", "metrics.jsonl")
RUN_FOLDERS = ("samples", "tensorboard")
STARTED_FILES = ("config.yaml", "metrics.jsonl")  # with RUN_FOLDERS: what a start writes before its first save
_STAGE = re.compile(r"stage-\d+")
_TEMPORARY = re.compile(r"\.(.+)\.[^/]+\.tmp")  # io/atomic.write_atomic's: .<name>.<random>.tmp
_SAMPLE = re.compile(r"step_\d+\.png|\.step_\d+\.png\..+\.partial")  # grids and io/images.write_image's temporaries
_EVENTS = "events.out.tfevents."


class FolderInUse(ConfigError):
    """Another process holds the run folder's lock."""


def read_marker(out: Path) -> dict | None:
    """The marker's content when `out` holds a valid one, else None."""
    try:
        data = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    ok = isinstance(data, dict) and data.get("format") == MARKER_FORMAT and isinstance(data.get("run_id"), str)
    return data if ok else None


def _is_vitrestore_checkpoint(path: Path) -> bool:
    """A checkpoint.pt that loads as one of ours (how folders from before the marker are known)."""
    if not path.is_file():
        return False
    try:
        load_checkpoint(path)
    except (CheckpointError, OSError):
        return False
    return True


@dataclass(frozen=True)
class Survey:
    """What a folder holds, as far as a run is concerned (read only: nothing is changed)."""

    out: Path
    exists: bool
    marker: dict | None  # the marker, when the folder holds a valid one
    legacy: bool  # no marker, but a vitrestore checkpoint (a run folder from before markers)
    foreign: tuple[str, ...]  # entries that are not a run's (paths relative to out), sorted
    present: tuple[str, ...]  # the run files and folders it holds

    @property
    def ours(self) -> bool:
        return self.marker is not None or self.legacy

    @property
    def checkpoint(self) -> bool:
        return "checkpoint.pt" in self.present

    @property
    def failed_start(self) -> bool:
        """Ours, and holds only what a start writes before its first checkpoint (nothing to resume)."""
        return self.ours and set(self.present) <= set(STARTED_FILES) | set(RUN_FOLDERS)


def _folder_entries(folder: Path, name: str) -> list[str]:
    """Entries of our sub-folder `name` that are not ours (as 'name/entry')."""
    if name == "samples":
        return [f"{name}/{p.name}" for p in folder.iterdir() if not (p.is_file() and _SAMPLE.fullmatch(p.name))]
    return [f"{name}/{p.name}" for p in folder.iterdir() if not (p.is_file() and p.name.startswith(_EVENTS))]


def _foreign(out: Path, ours: bool) -> tuple[list[str], list[str]]:
    """(entries that are not a run's, run files and folders present) of an existing folder."""
    foreign, present = [], []
    for p in sorted(out.iterdir()):
        name, link = p.name, p.is_symlink()
        if name == LOCK and p.is_file() and not link:
            continue  # created only by a run, right before it writes; never removed
        if _STAGE.fullmatch(name) and p.is_dir() and not link and survey(p).ours:
            continue  # a recipe's earlier stage: a run of its own, never cleared from here
        if not ours:
            foreign.append(name)
        elif name in RUN_FILES and p.is_file() and not link:
            present.append(name)
        elif name == MARKER and p.is_file():
            continue
        elif name in RUN_FOLDERS and p.is_dir() and not link:
            present.append(name)
            foreign += _folder_entries(p, name)
        elif not (p.is_file() and (m := _TEMPORARY.fullmatch(name)) and m.group(1) in RUN_FILES + (MARKER,)):
            foreign.append(name)
    return sorted(foreign), present


def survey(out: Path) -> Survey:
    """What `out` holds (ConfigError when it is a file, or cannot be listed)."""
    if not out.exists() and not out.is_symlink():
        return Survey(out, False, None, False, (), ())
    if not out.is_dir():
        what = "a link to nothing" if not out.exists() else "a file"
        raise ConfigError(f"{out}: train.out is {what}, not a folder")
    marker = read_marker(out)
    legacy = marker is None and _is_vitrestore_checkpoint(out / "checkpoint.pt")
    try:
        foreign, present = _foreign(out, marker is not None or legacy)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot be read ({exc.strerror or exc})") from None
    return Survey(out, True, marker, legacy, tuple(foreign), tuple(present))


def resumable(out: Path) -> bool:
    """Whether `out` holds a run of ours with a checkpoint (what --resume continues)."""
    s = survey(out)
    return s.ours and s.checkpoint


def fresh_start(s: Survey, force: bool) -> bool:
    """Whether a new run may start in the surveyed folder: raise ConfigError (one line, nothing
    changed) when it may not; True when the run's old files must be cleared first."""
    out = s.out
    if not s.exists:
        return False
    if s.foreign and not s.ours:
        cleared = ("--force clears only a vitrestore run's own files, so nothing was deleted: choose another "
                   "train.out" if force else "train into a new or empty folder (another train.out)")
        raise ConfigError(f"{out}: holds {s.foreign[0]}, which is not part of a vitrestore run (a run folder has "
                          f"{MARKER}); {cleared}")
    if s.checkpoint and not force:
        raise ConfigError(f"{out}: already holds a training run (checkpoint.pt); continue it with --resume {out}, "
                          f"or start over with --force (replaces it) or another train.out")
    if s.foreign:
        raise ConfigError(f"{out}: holds {s.foreign[0]}, which is not part of its vitrestore run; "
                          f"{'--force' if force else 'starting over'} clears only the run's own files, so nothing "
                          f"was deleted: move it out of the folder, or choose another train.out")
    if s.ours and not s.failed_start and not force:
        kept = ", ".join(name for name in s.present if name not in STARTED_FILES + RUN_FOLDERS)
        raise ConfigError(f"{out}: holds a vitrestore run's {kept} but no checkpoint to resume from; start over "
                          f"with --force (replaces them) or choose another train.out")
    return s.ours and bool(s.present)


def check_resume(s: Survey) -> None:
    """Raise (one line, nothing changed) unless the surveyed folder is a run of ours with a
    checkpoint: FileNotFoundError without a checkpoint, ConfigError when it is not ours."""
    checkpoint = s.out / "checkpoint.pt"
    if not s.exists:
        raise FileNotFoundError(f"{checkpoint}: no checkpoint to resume from ({s.out} does not exist)")
    if not s.ours:
        raise ConfigError(f"{s.out}: not a vitrestore run folder (no {MARKER} and no vitrestore checkpoint); "
                          f"--resume continues only a run that vitrestore started")
    if not s.checkpoint:
        raise FileNotFoundError(f"{checkpoint}: no checkpoint to resume from: the run stopped before its first "
                                f"checkpoint; start it again with the command that started it (it reuses the folder)")


def checkpoint_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a checkpoint: a replaced file has another stamp."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _write(fd: int, data: bytes) -> int:  # one place for tests to simulate a full disk
    return os.write(fd, data)


def append_line(path: Path, line: str) -> None:
    """Append one line to `path` whole or not at all: a failed write (a full disk) cuts the file
    back to where it was, so that a resumed run never appends after half a line."""
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            done = 0
            while done < len(data):
                done += _write(fd, data[done:])
        except OSError as exc:
            os.ftruncate(fd, size)
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    finally:
        os.close(fd)


class RunLock:
    """An exclusive `flock` on <out>/vitrestore-run.lock, which holds the holder's pid and host.
    The lock file is never removed (a removed one could be locked twice)."""

    def __init__(self, out: Path):
        self.path = out / LOCK
        self.fd: int | None = None

    def _in_use(self, fd: int) -> FolderInUse:
        try:
            who = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        except OSError:
            who = ""
        return FolderInUse(f"{self.path.parent}: in use by another training run{f' ({who})' if who else ''}; "
                           f"nothing was changed: wait for it to end, or choose another train.out")

    def _flock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._in_use(fd) from None
        except OSError as exc:  # a file system without locks
            raise ConfigError(f"{self.path}: cannot be locked ({exc.strerror or exc}); train into a folder on "
                              f"a local disk") from None

    def probe(self) -> None:
        """FolderInUse when another process holds the lock now (creates nothing)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # no lock file: no run has used the folder
        try:
            self._flock(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def acquire(self) -> None:
        """Take the lock (creating the lock file), or raise FolderInUse naming the holder."""
        if self.fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        try:
            self._flock(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # closing also releases a lock taken
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)  # also for data-loader workers forked with the descriptor
            os.close(self.fd)
            self.fd = None


class RunFolder:
    def __init__(self, out: Path, main: bool = True):
        """`main`: this process writes (rank 0); on other ranks every method that writes does nothing."""
        self.out, self.main = out, main
        self.tb = None
        self.lock = RunLock(out)
        self.run_id: str | None = None
        self.changed = False  # this run has changed the folder (cleared it or written to it)

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"

    def sample_grid(self, step: int) -> Path:
        return self.out / "samples" / f"step_{step:07d}.png"

    def check(self, resume: bool, force: bool) -> None:
        """Before any work: raise (one line) when this run may not use the folder; changes nothing.
        A run must not start over a run with a checkpoint (unless `force`), in a folder holding
        anything not ours, or resume anything but a run of ours with a checkpoint; nor use a
        folder another run holds."""
        s = survey(self.out)
        check_resume(s) if resume else fresh_start(s, force)
        if self.main and s.exists:
            self.lock.probe()

    def start(self, config: dict, resume: bool, force: bool, task: str,
              stamp: tuple[int, int, int] | None = None) -> None:
        """The run has started: lock the folder, check it again under the lock, clear an old run's
        files where `fresh_start` says so, write the marker (a new run) and the resolved config,
        and open TensorBoard when installed. `stamp`: the checkpoint a resumed run loaded, which
        must still be the folder's. Raises before changing anything; the lock is held until `close`."""
        if not self.main:
            return
        self.check(resume, force)  # before creating the folder or the lock file
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self._prepare(resume, force, task, stamp)
            write_atomic(self.out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        except BaseException:
            self.lock.release()
            raise
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.tb = SummaryWriter(str(self.out / "tensorboard"))

    def _prepare(self, resume: bool, force: bool, task: str, stamp: tuple[int, int, int] | None) -> None:
        """Under the lock: the folder as the run found it, cleared where that is due, and marked."""
        s = survey(self.out)
        if resume:
            check_resume(s)
            if stamp is not None and checkpoint_stamp(self.checkpoint) != stamp:
                raise ConfigError(f"{self.checkpoint}: was replaced by another run after this one loaded it; "
                                  f"nothing was changed: run the command again")
        elif fresh_start(s, force):
            if not force:
                print(f"notice: {self.out}: holds a start that saved no checkpoint; starting over "
                      f"(its {', '.join(s.present)} are replaced)", file=sys.stderr)
            self.changed = True
            self._clear()
        self.changed = True  # from here on, whatever fails: the marker and the config are next
        self.run_id = s.marker["run_id"] if resume and s.marker else uuid.uuid4().hex
        if not (resume and s.marker):  # a new run, or one from before markers that is resumed
            marker = {"format": MARKER_FORMAT, "version": 1, "run_id": self.run_id, "task": task,
                      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_atomic(self.out / MARKER, json.dumps(marker, indent=1) + "\n")

    def _clear(self) -> None:
        """Remove the run's own files (fresh_start has checked there is nothing else)."""
        for p in self.out.iterdir():
            m = _TEMPORARY.fullmatch(p.name)
            if p.name in RUN_FILES or (m and m.group(1) in RUN_FILES + (MARKER,)):
                p.unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            if (self.out / name).is_dir():
                shutil.rmtree(self.out / name)

    def log(self, record: dict) -> None:
        """One event (a dict with 'step') appended to metrics.jsonl and, numbers only, to TensorBoard."""
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        append_line(self.out / "metrics.jsonl", json.dumps(record))
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, record["step"])

    def save(self, training_state: dict, weights: dict, config: dict, card: dict) -> None:
        """The checkpoint, the weights file (with config and card) and MODEL_CARD.md, each atomically."""
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(training_state, self.checkpoint)
        save_weights(self.out / "weights.safetensors", weights, config, card)
        write_atomic(self.out / "MODEL_CARD.md", render_card(self.out.name, config, card))

    def close(self) -> None:
        """TensorBoard closed and the lock released (the run has written its last file)."""
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        self.lock.release()

    def advice(self, exc: BaseException | None, rerun: str, chained: bool = False) -> str:
        """What to do after this run stopped with `exc`, truthfully: nothing was changed; or
        continue from the checkpoint the folder keeps (--resume; for a recipe, `rerun`, which
        resumes it); or, with no checkpoint saved yet, run `rerun` again, which starts over."""
        if not self.changed:
            return "the run folder was not changed"
        space = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        first = "free space, then " if space else ""
        if self.checkpoint.is_file():
            again = rerun if chained else f"vitrestore train --resume {self.out}"
            return f"its last checkpoint is kept: {first}continue with: {again}"
        return f"no checkpoint was saved yet: {first}run the same command again, which starts over: {rerun}"
