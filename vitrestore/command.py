"""A task's command, declared once: `COMMAND` in tasks/<task>_command.py, a module that imports
no torch (`vitrestore --help` reads every one of them and stays fast).

A declaration holds the task's name, where its Task class is, the command's help, the task's
`Request` (vitrestore/request.py: what one inference call may be told), the command's own
`Inputs` (which model, a mask file: what only a command has) and `plan`, which turns both (and
the paths the user gave) into a `Plan`: the model to load and what the batch run calls on each image. The CLI makes
`vitrestore <task>` from it (vitrestore/cli.py), with the options every image command shares
(output, tiles, device, formats, --ensemble, and --adapt where the task adapts); the task table
(`vitrestore.tasks.get_task`) finds the Task class through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class NoInputs:
    """A command that takes nothing besides the shared options and its task's request."""


@dataclass(frozen=True)
class Plan:
    """One run of a command, planned from its inputs (the hooks run in the batch, per image):

    model     a shipped model's name or a weights file
    request   the task's request for every image (checked before any image is read, unless
              `per_image` adds to it)
    suffix    the output's name suffix (<stem>_<suffix>.<ext>; None: the task's)
    check     check(model): ValueError (one line) where the loaded model cannot run this command
    finish    finish(array, image) -> array: post-processing of each result
    per_image per_image(image) -> dict: request arguments of one image (e.g. its mask)
    out_size  out_size(image) -> (W, H): the output's size (None: the input's times the scale)
    exclude   folders whose files are never inputs (e.g. a mask folder)
    protect   files no output or report may replace (e.g. the mask)
    """

    model: str
    request: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    check: Callable[[Any], None] | None = None
    finish: Callable[[Any, Any], Any] | None = None
    per_image: Callable[[Any], dict[str, Any]] | None = None
    out_size: Callable[[Any], tuple[int, int]] | None = None
    exclude: tuple[Path, ...] = ()
    protect: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Command:
    """`vitrestore <task>`: see the module's text. `implementation` is "module:Class" in the
    tasks package (imported when a model runs, not for --help); `ensemble` the default of
    --ensemble; `adapt` whether the command takes --adapt (the task has an objective for it)."""

    task: str
    implementation: str
    help: str
    request: type
    plan: Callable[[Any, dict[str, Any], tuple[Path, ...]], Plan]  # (inputs, request, the paths given) -> Plan
    inputs: type = NoInputs
    ensemble: int = 1
    adapt: bool = False

    @property
    def summary(self) -> str:
        return self.help.strip().splitlines()[0]


def own_task(task: str, given: str) -> Callable[[Any], None]:
    """A Plan's `check`: the model must be one of `task` (a command never runs another task's model)."""
    def check(model: Any) -> None:
        if model.task.name != task:
            raise ValueError(f"{given}: not a model for `vitrestore {task}` (its task is {model.task.name}; "
                             f"run it with `vitrestore restore --weights {given}`)")
    return check
