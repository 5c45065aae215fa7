"""Task modules, installed as `vitrestore.tasks` (and found there from a plain checkout too).

The built-in tasks are listed in TASKS, explicitly: a new task is one module here and one entry
in that table. `get_task(name)` is the one lookup by name (configs, weights files, the CLI).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vitrestore.engine.runtime import Model, pick_device
from vitrestore.task import Task

from .denoise import Denoise
from . import inpaint_masks  # the user's masks for inpaint (the CLI, the studio)
from .inpaint import Inpaint
from .restore import Restore
from .style_transfer import StyleTransfer
from .super_resolution import Upscale

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (Denoise, Upscale, Inpaint, StyleTransfer, Restore)}


def get_task(name: str) -> type[Task]:
    """The task class called `name` (a config's `task:`); KeyError naming the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})") from None


def load_model(name_or_path: str | Path = "denoise", device: str = "auto", **kw: Any) -> Model:
    """A shipped model by name ('denoise') or any vitrestore weights file, ready to call on
    images (vitrestore/engine/runtime.py)."""
    return Model.from_weights(name_or_path, get_task, device=device, **kw)


__all__ = ["TASKS", "Model", "get_task", "inpaint_masks", "load_model", "pick_device"]
