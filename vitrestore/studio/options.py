"""What a client may ask of the studio, checked: the tasks, each task's options (a value from a
closed set or a checked range, of its JSON type), `check_job` for a job's JSON (and a preview's),
`crop_box` for a preview's crop, and `JobPlanner`, which turns a job's options into a model file
the studio itself lists and a checked request."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from .errors import ApiError, _shown
from .store import Stored

TASKS = ("denoise", "upscale", "inpaint", "stylize", "restore")
OPTIONS = {"denoise": ("sigma", "adapt"), "upscale": ("scale", "kind", "adapt"),  # every key a job's options may have
           "inpaint": ("mask", "texture", "adapt"), "stylize": ("style", "strength"), "restore": ("model",)}
ADAPT_SECONDS = (5, 600)  # the `adapt` option's range (0 or null: off), the CLI's --adapt SECONDS
_ADAPT = {"type": "number", "min": ADAPT_SECONDS[0], "max": ADAPT_SECONDS[1], "default": None,
          "help": "Seconds to fine-tune a copy of the model on this image first (0 or null: off)."}
# the studio's own options (which model runs, and the adaptation), as data: `plan` checks them
# against this and GET /api/tasks serves it beside each task's Request (its `value` fields); the
# choices None are filled in per studio (its styles, its --models folder's files)
STUDIO_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "denoise": {"adapt": _ADAPT},
    "upscale": {"scale": {"type": "choice", "choices": [2, 4], "default": 4, "help": "Enlargement factor."},
                "kind": {"type": "choice", "choices": ["classic", "real"], "default": "classic",
                         "help": "classic: clean inputs; real: real photos (blur, noise, JPEG), x4 only."},
                "adapt": _ADAPT},
    "inpaint": {"mask": {"type": "image id", "default": None,
                         "help": "An uploaded mask image of the image's size (white/opaque = fill)."},
                "adapt": _ADAPT},
    "stylize": {"style": {"type": "choice", "choices": None, "default": None, "help": "A shipped style."}},
    "restore": {"model": {"type": "choice", "choices": None, "default": None,
                          "help": "A weights file of the studio's --models folder."}},
}
JOB_KEYS = ("task", "image", "options")
PREVIEW_KEYS = JOB_KEYS + ("crop",)  # POST /api/preview: a job's keys and the crop
CROP_KEYS = ("x", "y", "size")  # the crop's centre in the image's pixels, its side
CROP_SIZE = (32, 512, 256)  # the crop side's range and default


def _number(task: str, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"{task}: option {key!r} must be a number from {low:g} to {high:g}, got {_shown(value)}")
    return float(value)


def _choice(task: str, key: str, value: Any, allowed: tuple) -> Any:
    if type(value) is not type(allowed[0]) or value not in allowed:  # noqa: E721  (True is not 1, "2" is not 2)
        raise ApiError(400, f"{task}: option {key!r} must be one of {', '.join(map(str, allowed))}, "
                            f"got {_shown(value)}")
    return value


def _flag(task: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{task}: option {key!r} must be true or false, got {_shown(value)}")
    return value


def adapt_seconds(task: str, options: dict[str, Any]) -> float | None:
    """The job's `adapt` option, checked: seconds to fine-tune a copy of the model on the job's
    image first (engine/adapt.py), or None (absent, null or 0: off). ApiError 400 otherwise."""
    value = options.get("adapt") if "adapt" in OPTIONS[task] else None
    if value is None or (type(value) in (int, float) and value == 0):
        return None
    low, high = ADAPT_SECONDS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"{task}: option 'adapt' must be a number of seconds from {low} to {high} "
                            f"(0 or null: off), got {_shown(value)}")
    return float(value)


def check_job(body: dict[str, Any], keys: tuple[str, ...] = JOB_KEYS,
              what: str = "the job") -> tuple[str, str, dict[str, Any]]:
    """A job's JSON (or, with PREVIEW_KEYS, a preview's), checked: (task, image id, options);
    ApiError 400 naming what is wrong."""
    unknown = [k for k in body if k not in keys]
    if unknown:
        raise ApiError(400, f"unknown key {_shown(unknown[0])} in {what} (it takes {', '.join(keys)})")
    task = body.get("task")
    if not isinstance(task, str) or task not in TASKS:
        raise ApiError(400, f"task must be one of {', '.join(TASKS)}, got {_shown(task)}")
    image_id = body.get("image")
    if not isinstance(image_id, str):
        raise ApiError(400, f"image must be the id of an uploaded image, got {_shown(image_id)}")
    options = body.get("options")
    options = {} if options is None else options  # [], 0, false or "" is no object either
    if not isinstance(options, dict):
        raise ApiError(400, f"options must be a JSON object, got {_shown(options)}")
    return task, image_id, options


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
    --models folder's files, the uploaded images (`image(id)`: the store's)."""

    def __init__(self, styles: list[str], models_dir: Path | None, image: Callable[[Any], Stored],
                 requests: dict[str, type]):
        """`requests`: each task's Request (vitrestore/request.py), where its options' ranges live."""
        self.styles, self.models_dir, self.image, self.requests = styles, models_dir, image, requests

    def schema(self) -> dict[str, Any]:
        """GET /api/tasks: every task's options as data, {"tasks": {task: {"command", "options":
        [{name, type, default, min, max, choices, help}]}}}: its Request's user options, then the
        studio's own (their choices filled in: this studio's styles and model files)."""
        from ..request import schema

        out = {}
        for task in TASKS:
            options = [{k: o[k] for k in ("name", "type", "default", "min", "max", "choices", "help")}
                       for o in schema(self.requests[task]) if o["kind"] == "value"]
            for name, o in STUDIO_OPTIONS[task].items():
                choices = o.get("choices")
                if choices is None and o["type"] == "choice":
                    choices = list(self.styles) if name == "style" else self.model_files()
                options.append({"name": name, "type": o["type"], "default": o.get("default"), "min": o.get("min"),
                                "max": o.get("max"), "choices": choices, "help": o["help"]})
            out[task] = {"command": task, "options": options}
        return {"tasks": out}

    def _range(self, task: str, key: str) -> tuple[float, float]:
        """A number option's range, as its task's Request declares it."""
        field = next(f for f in dataclasses.fields(self.requests[task]) if f.name == key)
        return field.metadata["lo"], field.metadata["hi"]

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

    def plan(self, task: str, options: dict[str, Any], src: Stored) -> tuple[Path, int, dict[str, Any]]:
        """(model file, ensemble, request) for a job. Every option is a value from a closed set or
        a checked range, of its JSON type (true is no number, "false" no flag); the model file is
        one the studio lists, never a client's path. ApiError 400 naming the option otherwise.
        The `adapt` option is checked here too, and read by `adapt_seconds`."""
        unknown = [k for k in options if k not in OPTIONS[task]]
        if unknown:
            raise ApiError(400, f"{task}: unknown option {_shown(unknown[0])} ({task} takes "
                                f"{', '.join(OPTIONS[task])})")
        get = options.get
        adapt_seconds(task, options)  # _run reads it again
        if task == "denoise":
            sigma = get("sigma")
            return self.shipped("denoise"), 2, {} if sigma is None else {"sigma": _number(task, "sigma", sigma,
                                                                                          *self._range(task, "sigma"))}
        if task == "upscale":
            own = STUDIO_OPTIONS[task]
            scale = _choice(task, "scale", get("scale", own["scale"]["default"]), tuple(own["scale"]["choices"]))
            kind = _choice(task, "kind", get("kind", own["kind"]["default"]), tuple(own["kind"]["choices"]))
            if kind == "real" and scale != 4:
                raise ApiError(400, "upscale: kind 'real' is x4 only (scale 4)")
            return self.shipped(f"upscale-x{scale}" + ("-real" if kind == "real" else "")), 1, {}
        if task == "stylize":
            style = get("style")
            if not isinstance(style, str) or style not in self.styles:
                raise ApiError(400, f"stylize: unknown style {_shown(style)} (styles: {', '.join(self.styles)})")
            return self.shipped(f"style-{style}"), 1, {"strength": _number(task, "strength", get("strength", 1.0),
                                                                           *self._range(task, "strength"))}
        if task == "restore":
            name, files = get("model"), self.model_files()
            if not isinstance(name, str) or name not in files:
                raise ApiError(400, f"restore: unknown model {_shown(name)} (the models folder holds: "
                                    f"{', '.join(files) or 'none'})")
            return self.models_dir / name, 1, {}
        mask_id = get("mask")  # inpaint
        if not isinstance(mask_id, str):
            raise ApiError(400, f"inpaint: option 'mask' must be the id of an uploaded mask image, "
                                f"got {_shown(mask_id)}")
        mask = self.image(mask_id)
        if (mask.width, mask.height) != (src.width, src.height):
            raise ApiError(400, f"inpaint: the mask is {mask.width}x{mask.height} but the image is "
                                f"{src.width}x{src.height}")
        return self.shipped("inpaint"), 1, {"texture": _flag(task, "texture", get("texture", True))}
