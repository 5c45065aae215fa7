"""Training checkpoints: tensors and plain values only (dicts, lists, numbers, strings), so
they load with `torch.load(weights_only=True)` and a checkpoint from someone else can never
run code. Every way a file can be wrong ends in a CheckpointError naming the file and why.
"""
from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import torch

from ..config import ConfigError, upgrade_generator
from ..io.atomic import write_atomic

REQUIRED = ("config", "step", "G", "ema", "opt_g")


class CheckpointError(ValueError):
    """A checkpoint cannot be used; str() is '<path>: <reason>'."""


def save_checkpoint(state: dict, path: Path) -> None:
    """Serialise in memory, then write atomically (a full disk leaves the old checkpoint and no
    temporary file, and raises OSError naming the file)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getbuffer().tobytes())


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first sentence of an exception's first line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0].split(". ")[0].rstrip(".") if lines else type(exc).__name__)[:limit]


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """The state mapping of a checkpoint written by `save_checkpoint`, checked for its keys."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes); not a checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the reader's own warnings about foreign files: we say what is wrong
            st = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise CheckpointError(f"{path}: holds Python objects, not only tensors and plain values; refused, "
                                  f"since loading it could run code") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001  (truncated or foreign files raise anything inside the reader)
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or damaged "
                              f"({first_line(exc)})") from None
    if not isinstance(st, dict):
        raise CheckpointError(f"{path}: not a vitrestore checkpoint (holds a {type(st).__name__}, not a mapping)")
    missing = [k for k in REQUIRED if k not in st]
    if missing:
        raise CheckpointError(f"{path}: not a vitrestore checkpoint (no {', '.join(missing)})")
    if not isinstance(st["step"], int) or st["step"] < 0 or not isinstance(st["config"], dict):
        raise CheckpointError(f"{path}: not a vitrestore checkpoint (bad step or config)")
    return st


def state_dict_error(exc: BaseException) -> str:
    """The telling line of a load_state_dict error (its first line only says 'Error(s) in loading')."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else (lines or [""])[0]
    return (detail or type(exc).__name__)[:200]


def config_difference(old: dict, new: dict, sections: tuple[str, ...] = ("generator", "discriminator")) -> str | None:
    """The first model-shape key whose value differs between two config mappings, as text."""
    for section in sections:
        a, b = old.get(section) or {}, new.get(section) or {}
        if section == "generator":  # a checkpoint of an earlier version: its keys as they are read now
            try:
                a = {"arch": "uvit", **upgrade_generator(a, "the checkpoint")}
            except ConfigError as exc:
                return str(exc)
        for key in sorted(set(a) | set(b)):
            if key != "in_channels" and a.get(key) != b.get(key):
                return f"{section}.{key} is {b.get(key)!r} here but {a.get(key)!r} in the checkpoint"
    return None
