"""Task modules, installed as `vitrestore.tasks` (and found there from a plain checkout too).

A task is declared once, in `<task>_command.py` here (`COMMAND`, vitrestore/command.py: its
name, Task class, request, command): the table below is found from those files, so a new task
is its modules and configs, with no list to edit. Reading the declarations imports no torch
(`vitrestore --help`); a Task class is imported when it is asked for. `get_task(name)` is the
one lookup by name (configs, weights files, the CLI).
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import Any

from vitrestore.command import Command

DECLARATION_SUFFIX = "_command"


@functools.cache
def commands() -> dict[str, Command]:
    """Every task's declaration by task name, from the `*_command` modules of this package."""
    found: dict[str, Command] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith(DECLARATION_SUFFIX)):
        command = importlib.import_module(f"{__name__}.{module}").COMMAND
        if command.task in found:
            raise RuntimeError(f"task {command.task!r} is declared twice (tasks/{module}.py)")
        found[command.task] = command
    return found


@functools.cache
def get_task(name: str) -> type:
    """The task class called `name` (a config's `task:`); KeyError naming the known ones."""
    command = commands().get(name)
    if command is None:
        raise KeyError(f"unknown task {name!r} (known: {', '.join(sorted(commands()))})")
    module, cls = command.implementation.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def load_model(name_or_path: str | Path = "denoise", device: str = "auto", **kw: Any):
    """A shipped model by name ('denoise') or any vitrestore weights file, ready to call on
    images (vitrestore/engine/runtime.py: Model)."""
    from vitrestore.engine.runtime import Model  # noqa: PLC0415  (torch: not for --help)

    return Model.from_weights(name_or_path, get_task, device=device, **kw)


def __getattr__(name: str) -> Any:
    """TASKS (every task class by name), Model, pick_device and inpaint_masks, imported when
    first asked for."""
    if name == "TASKS":
        return {task: get_task(task) for task in commands()}
    if name in ("Model", "pick_device"):
        from vitrestore.engine import runtime  # noqa: PLC0415

        return getattr(runtime, name)
    if name == "inpaint_masks":
        return importlib.import_module(f"{__name__}.inpaint_masks")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TASKS", "Model", "commands", "get_task", "inpaint_masks", "load_model", "pick_device"]
