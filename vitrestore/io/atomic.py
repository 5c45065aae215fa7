"""Atomic file writes for run folders and reports: the bytes go to a hidden temporary file
beside the target, are synced, and the file is renamed over the target. A failure (disk full,
read-only folder) removes the temporary file and raises OSError naming the target, so a
reader sees the old file or the new one, never half of one, and nothing is left behind.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically; the file gets `mode` less the umask (not mkstemp's 0600)."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, data, path)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise


@contextmanager
def replaced_atomically(path: str | Path, suffix: str = "", mode: int = 0o644) -> Iterator[Path]:
    """A hidden temporary path beside `path` for any writer (a muxer, PIL) to write; on a clean
    exit it is synced, given `mode` less the umask and renamed over `path`; on an exception (or a
    failed rename) it is removed: `path` holds the old file or the whole new one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:  # named by the target, not the hidden file
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write(f, data: bytes, target: Path) -> None:  # one place for tests to simulate a full disk
    f.write(data)


def os_reason(exc: OSError) -> str:
    """'<path>: <reason>' for an OSError, without the '[Errno N]' prefix."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason
