"""A task's command, declared once: `COMMAND` in tasks/<task>_command.py, a module that imports
no torch (`vitrestore --help` reads every one of them and stays fast).

A declaration holds the task's name, where its Task class is, the command's help, the task's
`Request` (vitrestore/request.py: what one inference call may be told), the command's own
`Inputs` (which model, a mask file: what only a command has) and `plan`, which turns both (and
the paths the user gave) into a `Plan`: the model to load and what the batch run calls on each image. The CLI makes
`vitrestore <task>` from it (vitrestore/cli.py), with the options every image command shares
(output, tiles, device, formats, --ensemble, and --adapt where the task adapts); the task table
(`vitrestore.tasks.get_task`) finds the Task class through it.

`studio` (a `Studio`) puts the task in the browser studio (vitrestore/studio): its label, its own
options (which of the studio's models: never a client's path; an uploaded mask), and its plan.
The studio's checks, GET /api/tasks and the page's controls are made from it and the request.
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
class Offer:
    """What a studio offers a task's studio plan: `shipped(name)` a shipped model's file, the
    shipped `styles`, `model_files` (the --models folder's .safetensors names) in `models_dir`."""

    shipped: Callable[[str], Path]
    styles: tuple[str, ...] = ()
    model_files: tuple[str, ...] = ()
    models_dir: Path | None = None


@dataclass(frozen=True)
class Rule:
    """One option's value limits another's: where `when` is `value`, `then` must be one of
    `allowed` (`why`: the one-line reason). The studio refuses a job against it and the page
    offers only the allowed choices."""

    when: str
    value: Any
    then: str
    allowed: tuple
    why: str


@dataclass(frozen=True)
class Draft:
    """A model-made starting value for one of a Studio's uploads (repair's damage mask, for the
    user to edit before the job runs): `plan(options, request, offer) -> (model file, request)`
    as a Studio's plan, the job's own options given but the upload itself; the model's output
    on the whole image, 8-bit grey, is the upload (white = marked). `label`: the page's button."""

    label: str
    plan: Callable[[Any, dict[str, Any], Offer], tuple[Path, dict[str, Any]]]


@dataclass(frozen=True)
class Studio:
    """A task in the studio. `options`: its own options besides the request's, declared with
    `option(...)` (type "image id": the id of an uploaded image of the job's image's size);
    `offered`: options whose choices are what the studio offers, by Offer field (e.g.
    {"style": "styles"}); `plan(options, request, offer) -> (model file, request)` (ValueError,
    one line, where the options cannot run together); `uploads`: "image id" option -> the
    request map it becomes, read by `read_upload(name, pixels, cut) -> (H, W) bool` (`cut`:
    None, or two slices, a preview's crop and its context; ValueError where it holds nothing to
    work on). `preview`: the
    page previews the options live on a crop; `order`: its place in the page's task list;
    `keeps_name`: runs in a row keep one name (photo -> photo_inpainted -> photo_inpainted);
    `rules`: what one option's value allows of another (`Rule`); `drafts`: upload option -> the
    `Draft` that proposes it; `suffix`: the result's name, <stem>_<suffix> (None: the suffix of
    the task of the model the plan picks)."""

    label: str
    plan: Callable[[Any, dict[str, Any], Offer], tuple[Path, dict[str, Any]]]
    options: type = NoInputs
    offered: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)
    read_upload: Callable[[str, Any, Any], Any] | None = None
    preview: bool = False
    order: int = 100
    keeps_name: bool = False
    rules: tuple[Rule, ...] = ()
    drafts: dict[str, Draft] = field(default_factory=dict)
    suffix: str | None = None


@dataclass(frozen=True)
class Command:
    """`vitrestore <task>`: see the module's text. `implementation` is "module:Class" in the
    tasks package (imported when a model runs, not for --help); `ensemble` the default of
    --ensemble (and the studio's); `adapt` whether the command takes --adapt (the task has an
    objective for it); `studio` how the studio offers it (None: not there)."""

    task: str
    implementation: str
    help: str
    request: type
    plan: Callable[[Any, dict[str, Any], tuple[Path, ...]], Plan]  # (inputs, request, the paths given) -> Plan
    inputs: type = NoInputs
    ensemble: int = 1
    adapt: bool = False
    studio: Studio | None = None

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
