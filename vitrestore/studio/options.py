"""What a client may ask of the studio, checked. The tasks are those whose declaration has a
`studio` (tasks/<task>_command.py, vitrestore/command.py); a job's options are its task's
Request's user options, the task's studio options and `adapt` where the task adapts, each a value
from a closed set or a checked range, of its JSON type. `check_job` checks a job's JSON (and a
preview's), `crop_box` a preview's crop, and `JobPlanner` turns a job's options into a model file
the studio itself lists and a checked request, and serves the options as GET /api/tasks."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

from ..command import Command, Offer
from ..request import meta
from .errors import ApiError, _shown
from .store import Stored

ADAPT_SECONDS = (5, 600)  # the `adapt` option's range (0 or null: off), the CLI's --adapt SECONDS
ADAPT_HELP = "Seconds to fine-tune a copy of the model on this image first (0 or null: off)."
JOB_KEYS = ("task", "image", "options")
PREVIEW_KEYS = JOB_KEYS + ("crop", "frame")  # POST /api/preview: a job's keys, the crop, a clip's frame
DRAFT_KEYS = JOB_KEYS + ("upload", "frame")  # POST /api/draft: a job's keys, which upload to draft, a clip's frame
CROP_KEYS = ("x", "y", "size")  # the crop's centre in the image's pixels, its side
CROP_SIZE = (32, 512, 256)  # the crop side's range and default
OFFERED_WORDS = {"styles": "styles", "model_files": "the models folder holds"}  # an unknown choice's message


def _number(task: str, key: str, value: Any, low: float, high: float, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
            or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        raise ApiError(400, f"{task}: option {key!r} must be {kind} from {low:g} to {high:g}, got {_shown(value)}")
    return int(value) if whole else float(value)


def _choice(task: str, key: str, value: Any, allowed: tuple) -> Any:
    if not allowed or type(value) is not type(allowed[0]) or value not in allowed:  # noqa: E721  (True is not 1, "2" is not 2)
        raise ApiError(400, f"{task}: option {key!r} must be one of {', '.join(map(str, allowed))}, "
                            f"got {_shown(value)}")
    return value


def _flag(task: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{task}: option {key!r} must be true or false, got {_shown(value)}")
    return value


def check_job(body: dict[str, Any], tasks: tuple[str, ...], keys: tuple[str, ...] = JOB_KEYS,
              what: str = "the job") -> tuple[str, str, dict[str, Any]]:
    """A job's JSON (or, with PREVIEW_KEYS, a preview's), checked: (task, image id, options);
    `tasks` the studio's. ApiError 400 naming what is wrong."""
    unknown = [k for k in body if k not in keys]
    if unknown:
        raise ApiError(400, f"unknown key {_shown(unknown[0])} in {what} (it takes {', '.join(keys)})")
    task = body.get("task")
    if not isinstance(task, str) or task not in tasks:
        raise ApiError(400, f"task must be one of {', '.join(tasks)}, got {_shown(task)}")
    image_id = body.get("image")
    if not isinstance(image_id, str):
        raise ApiError(400, f"image must be the id of an uploaded image, got {_shown(image_id)}")
    options = body.get("options")
    options = {} if options is None else options  # [], 0, false or "" is no object either
    if not isinstance(options, dict):
        raise ApiError(400, f"options must be a JSON object, got {_shown(options)}")
    return task, image_id, options


def frame_index(frame: Any, src: Stored) -> int | None:
    """A preview's or draft's `frame`: the index of a clip's frame to run on (default 0), None for
    an image (which takes none). ApiError 400 naming the key otherwise."""
    if src.clip is None:
        if frame is not None:
            raise ApiError(400, f"frame: {src.stem}{src.suffix} is an image, not a clip (leave frame out)")
        return None
    frame = 0 if frame is None else frame
    if type(frame) is not int or not 0 <= frame < src.clip.frames:  # noqa: E721  (not 2.0, not true)
        raise ApiError(400, f"frame must be a whole number from 0 to {src.clip.frames - 1}, got {_shown(frame)}")
    return frame


def crop_box(crop: Any, width: int, height: int) -> tuple[int, int, int, int]:
    """A preview's crop {x, y, size} (the centre, a pixel of the image; the side, default 256),
    checked, as the box (left, top, width, height) it covers: shifted inside the image, the whole
    side where the image is smaller. ApiError 400 naming the key otherwise."""
    crop = {} if crop is None else crop
    if not isinstance(crop, dict):
        raise ApiError(400, f"crop must be a JSON object {{x, y, size}}, got {_shown(crop)}")
    unknown = [k for k in crop if k not in CROP_KEYS]
    if unknown:
        raise ApiError(400, f"crop: unknown key {_shown(unknown[0])} (it takes {', '.join(CROP_KEYS)})")
    low, high, size = CROP_SIZE
    limits = {"x": (0, width - 1, width // 2), "y": (0, height - 1, height // 2), "size": (low, high, size)}
    x, y, size = (crop.get(k, limits[k][2]) for k in CROP_KEYS)
    for key, value in zip(CROP_KEYS, (x, y, size)):
        if type(value) is not int or not limits[key][0] <= value <= limits[key][1]:  # noqa: E721  (not 2.0, not true)
            raise ApiError(400, f"crop: {key!r} must be a whole number from {limits[key][0]} to {limits[key][1]}, "
                                f"got {_shown(value)}")
    w, h = min(size, width), min(size, height)
    return min(max(x - w // 2, 0), width - w), min(max(y - h // 2, 0), height - h), w, h


class JobPlanner:
    """A job's model file and request, checked against what this studio offers: its styles, the
    --models folder's files, the uploaded images (`image(id)`: the store's). `commands`: the task
    declarations (vitrestore.tasks.commands()); those with a `studio` are the studio's tasks."""

    def __init__(self, commands: dict[str, Command], styles: list[str], models_dir: Path | None,
                 image: Callable[[Any], Stored]):
        shown = sorted((c for c in commands.values() if c.studio is not None), key=lambda c: (c.studio.order, c.task))
        for c in shown:  # a client never names a file: the studio's models are offered choices, its files uploads
            paths = [f.name for f in dataclasses.fields(c.studio.options) if meta(f)["type"] == "path"]
            if paths:
                raise ValueError(f"tasks/{c.task}: studio option {paths[0]!r} is a path; offer choices instead")
        self.commands = {c.task: c for c in shown}
        self.styles, self.models_dir, self.image = styles, models_dir, image

    @property
    def tasks(self) -> tuple[str, ...]:
        """The studio's tasks, in the page's order."""
        return tuple(self.commands)

    def _fields(self, task: str) -> list[tuple[str, dataclasses.Field]]:
        """A job's options as ("request" | "studio", field), the request's user options first."""
        command = self.commands[task]
        return ([("request", f) for f in dataclasses.fields(command.request) if meta(f)["kind"] == "value"]
                + [("studio", f) for f in dataclasses.fields(command.studio.options)])

    def options(self, task: str) -> tuple[str, ...]:
        """Every key a job's options may have."""
        return tuple(f.name for _, f in self._fields(task)) + (("adapt",) if self.commands[task].adapt else ())

    def offer(self) -> Offer:
        return Offer(self.shipped, tuple(self.styles), tuple(self.model_files()), self.models_dir)

    def _choices(self, task: str, f: dataclasses.Field, offer: Offer) -> tuple:
        source = self.commands[task].studio.offered.get(f.name)
        return tuple(getattr(offer, source)) if source else tuple(meta(f)["choices"] or ())

    def schema(self) -> dict[str, Any]:
        """GET /api/tasks: every task's options as data, {"tasks": {task: {"command", "label",
        "preview", "options": [{name, type, default, min, max, step, choices, help}], "rules": [{when,
        value, then, allowed, why}], "drafts": [{upload, label}]}}} in the page's order: its Request's
        user options, its studio options (offered choices filled in: this studio's styles, its
        --models folder's files), then `adapt` where the task adapts; `drafts`: the uploads a
        model proposes (POST /api/draft)."""
        offer, out = self.offer(), {}
        for task, command in self.commands.items():
            options = []
            for _, f in self._fields(task):
                m = meta(f)
                choices = self._choices(task, f, offer) if m["type"] == "choice" else m["choices"]
                options.append({"name": f.name, "type": m["type"], "default": f.default, "min": m["lo"], "max": m["hi"],
                                "step": m["step"], "choices": list(choices) if choices is not None else None,
                                "help": m["help"]})
            if command.adapt:
                options.append({"name": "adapt", "type": "number", "default": None, "min": ADAPT_SECONDS[0],
                                "max": ADAPT_SECONDS[1], "step": 1, "choices": None, "help": ADAPT_HELP})
            out[task] = {"command": task, "label": command.studio.label, "preview": command.studio.preview,
                         "options": options, "rules": [dict(dataclasses.asdict(r), allowed=list(r.allowed))
                                                       for r in command.studio.rules],
                         "drafts": [{"upload": name, "label": d.label} for name, d in command.studio.drafts.items()]}
        return {"tasks": out}

    def adapt_seconds(self, task: str, options: dict[str, Any]) -> float | None:
        """The job's `adapt` option, checked: seconds to fine-tune a copy of the model on the job's
        image first (engine/adapt.py), or None (absent, null or 0: off). ApiError 400 otherwise."""
        value = options.get("adapt") if self.commands[task].adapt else None
        if value is None or (type(value) in (int, float) and value == 0):
            return None
        low, high = ADAPT_SECONDS
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ApiError(400, f"{task}: option 'adapt' must be a number of seconds from {low} to {high} "
                                f"(0 or null: off), got {_shown(value)}")
        return float(value)

    def uploads(self, task: str, options: dict[str, Any]) -> dict[str, str]:
        """The job's uploaded images besides its image, by the request map each becomes: {map: id}."""
        return {target: options[name] for name, target in self.commands[task].studio.uploads.items()
                if isinstance(options.get(name), str)}

    def model_files(self) -> list[str]:
        """The --models folder's weights files by name: the only names the Restore task accepts."""
        if self.models_dir is None or not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.glob("*.safetensors") if p.is_file())

    @staticmethod
    def shipped(name: str) -> Path:
        """A shipped model's file in the package (never looked up in the working directory)."""
        from ..weights import SUFFIX, shipped_dir

        return Path(shipped_dir()) / f"{name}{SUFFIX}"

    def _value(self, task: str, f: dataclasses.Field, value: Any, offer: Offer, src: Stored) -> Any:
        """One option's value, checked by its declaration; ApiError 400 naming it otherwise."""
        m, key = meta(f), f.name
        if m["type"] in ("number", "int"):
            high = m["hi"] if m["hi"] is not None else math.inf
            return _number(task, key, value, m["lo"] if m["lo"] is not None else -math.inf, high,
                           whole=m["type"] == "int")
        if m["type"] == "flag":
            return _flag(task, key, value)
        if m["type"] == "choice":
            choices = self._choices(task, f, offer)
            source = self.commands[task].studio.offered.get(f.name)
            if source:  # never a path: one of this studio's own
                if not isinstance(value, str) or value not in choices:
                    raise ApiError(400, f"{task}: unknown {key} {_shown(value)} ({OFFERED_WORDS.get(source, source)}: "
                                        f"{', '.join(choices) or 'none'})")
                return value
            return _choice(task, key, value, choices)
        if m["type"] == "image id":
            if not isinstance(value, str):
                raise ApiError(400, f"{task}: option {key!r} must be the id of an uploaded {key} image, got "
                                    f"{_shown(value)}")
            upload = self.image(value)
            if (upload.width, upload.height) != (src.width, src.height):
                raise ApiError(400, f"{task}: the {key} is {upload.width}x{upload.height} but the image is "
                                    f"{src.width}x{src.height}")
            return value
        if not isinstance(value, str):  # text
            raise ApiError(400, f"{task}: option {key!r} must be text, got {_shown(value)}")
        return value

    def plan(self, task: str, options: dict[str, Any], src: Stored) -> tuple[Path, int, dict[str, Any]]:
        """(model file, ensemble, request) for a job. Every option is a value from a closed set or
        a checked range, of its JSON type (true is no number, "false" no flag); the model file is
        one the studio lists, never a client's path. ApiError 400 naming the option otherwise.
        The `adapt` option is checked here too, and read by `adapt_seconds`; uploaded maps
        (`uploads`) are checked here and read by the server."""
        command = self.commands[task]
        own, request, offer = self._checked(task, options, src)
        try:
            path, request = command.studio.plan(command.studio.options(**own), request, offer)
        except ValueError as exc:
            raise ApiError(400, f"{task}: {exc}") from None
        return path, command.ensemble, request

    def plan_draft(self, task: str, upload: Any, options: dict[str, Any], src: Stored) -> tuple[Path, dict[str, Any]]:
        """(model file, request) of the model that proposes the job's upload `upload` (its
        Studio's `drafts`), from the job's options without that upload, checked as a job's are."""
        drafts = self.commands[task].studio.drafts
        if not isinstance(upload, str) or upload not in drafts:
            raise ApiError(400, f"{task}: upload must be one of {', '.join(drafts) or '(none: nothing is drafted)'}, "
                                f"got {_shown(upload)}")
        if options.get(upload) is not None:
            raise ApiError(400, f"{task}: a draft of {upload!r} is made without one: leave it out of the options")
        options = {k: v for k, v in options.items() if k != upload}
        own, request, offer = self._checked(task, options, src, leave=upload)
        try:
            return drafts[upload].plan(self.commands[task].studio.options(**own), request, offer)
        except ValueError as exc:
            raise ApiError(400, f"{task}: {exc}") from None

    def _checked(self, task: str, options: dict[str, Any], src: Stored,
                 leave: str | None = None) -> tuple[dict[str, Any], dict[str, Any], Offer]:
        """(the studio options, the request, the offer) of a job's options, each checked; `leave`:
        an option not yet given (a draft's upload: None)."""
        command, keys = self.commands[task], self.options(task)
        unknown = [k for k in options if k not in keys]
        if unknown:
            raise ApiError(400, f"{task}: unknown option {_shown(unknown[0])} ({task} takes {', '.join(keys)})")
        self.adapt_seconds(task, options)  # _run reads it again
        offer, request, own = self.offer(), {}, {}
        for where, f in self._fields(task):
            value = options.get(f.name)
            if value is None and where == "request":
                continue  # the model's default
            if (value is None and not meta(f)["required"]) or f.name == leave:
                own[f.name] = None if f.name == leave else f.default
                continue
            (request if where == "request" else own)[f.name] = self._value(task, f, value, offer, src)
        given = {**own, **request}
        for rule in command.studio.rules:
            if given.get(rule.when) == rule.value and given.get(rule.then) not in rule.allowed:
                raise ApiError(400, f"{task}: {rule.why}")
        return own, request, offer
