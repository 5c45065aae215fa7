"""A task's request, declared once: what one inference call may be told besides the image (e.g.
denoise's `sigma`, inpainting's `mask`).

A task declares a frozen dataclass `Request` (tasks/<task>_command.py) whose fields carry, in
`option(...)`, their default, range or choices, help text and kind:

    value   a number, flag or choice the user gives (a CLI option, a studio control)
    image   an image-sized map (B, 1, H, W) such as a mask: the runtime flips it with the image
    hook    a callable a program hands over (e.g. the studio's cancel), never a user's option

From that one declaration come the request's checks (`check`: unknown keys, with the closest
known one, types and ranges, one line naming the option), the maps the runtime flips with the
image for its ensemble (`maps`; tiles are cut from every image-sized tensor, task-added ones
too), and the description the CLI's options and the studio's checks are tested against
(`schema`, tests/test_requests.py).

A command's own inputs (which model, a mask file: vitrestore/command.py) and a task's studio
options are declared with the same `option(...)`; their `type` is one of TYPES: number, int,
choice, flag, text, path, or (the studio's) image id, an uploaded image. Where it is left out it
is inferred: flag from choices (False, True), choice from other choices, number from a range,
else text.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

KINDS = ("value", "image", "hook")
TYPES = ("number", "int", "choice", "flag", "text", "path", "image id")


def option(default: Any = None, *, help: str, lo: float | None = None, hi: float | None = None,
           choices: tuple | None = None, kind: str = "value", unit: str = "", type: str | None = None,
           required: bool = False, metavar: str | None = None, step: float | None = None) -> Any:
    """A request field: `lo`/`hi` bound a number (`unit` names its scale in messages),
    `choices` close a set (False, True: a flag); `kind` as above; `type` one of TYPES (inferred
    where left out); `required`: the CLI refuses to run without it; `metavar`: its help's
    placeholder; `step`: a number's useful increment (the studio's controls move by it)."""
    if kind not in KINDS:
        raise ValueError(f"option kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if type is None:
        type = ("flag" if choices and all(c is True or c is False for c in choices) else
                "choice" if choices is not None else "number" if lo is not None else "text")
    if type not in TYPES:
        raise ValueError(f"option type must be one of {', '.join(TYPES)}, got {type!r}")
    return dataclasses.field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "choices": choices,
                                                         "kind": kind, "unit": unit, "type": type,
                                                         "required": required, "metavar": metavar, "step": step})


@dataclass(frozen=True)
class NoRequest:
    """A task that takes nothing besides the image."""


class UnknownOption(TypeError, ValueError):
    """A request option the task does not have (a TypeError, as for a misspelled keyword
    argument, and a ValueError, which the CLI and the studio report in one line)."""


def meta(f: dataclasses.Field) -> dict:
    """A field's option metadata (a plain field's: a value of no declared type, not checked)."""
    return f.metadata or {"help": "", "lo": None, "hi": None, "choices": None, "kind": "value", "unit": "",
                          "type": None, "required": False, "metavar": None, "step": None}  # a plain field: no check


def _is_flag(m: dict) -> bool:
    return m["type"] == "flag"


def keys(request_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(request_type))


def maps(request_type: type) -> tuple[str, ...]:
    """The image-sized fields: what the runtime flips with the image."""
    return tuple(f.name for f in dataclasses.fields(request_type) if meta(f)["kind"] == "image")


def number(name: str, value: Any, lo: float, hi: float) -> float:
    """A number option: a real number (not a bool, not text; a one-element tensor is taken) in
    [lo, hi] (NaN refused)."""
    if hasattr(value, "numel") and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    if not lo <= float(value) <= hi:  # also refuses NaN
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def check(request_type: type, task: str, request: dict[str, Any]) -> None:
    """Every key a field of `request_type` (UnknownOption naming it and the closest known one),
    every value given (not None) of its field's type and in its range or choices (ValueError,
    one line naming the option)."""
    fields = {f.name: f for f in dataclasses.fields(request_type)}
    unknown = [k for k in request if k not in fields]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(fields), n=1)
        raise UnknownOption(f"unknown option {unknown[0]!r} for {task} (known: {', '.join(fields) or 'none'})"
                            + (f"; did you mean {close[0]!r}?" if close else ""))
    for name, value in request.items():
        if value is None:
            continue
        m = meta(fields[name])
        if m["kind"] == "hook":
            if not callable(value):
                raise ValueError(f"{name} must be a function, got {value!r}")
        elif m["kind"] == "value":
            if m["choices"] is not None:
                if type(value) not in {type(c) for c in m["choices"]} or value not in m["choices"]:
                    if _is_flag(m):
                        raise ValueError(f"{name} must be True or False, got {value!r}")
                    raise ValueError(f"{name} must be one of {', '.join(map(str, m['choices']))}, got {value!r}")
            elif m["lo"] is not None:
                label = f"{name} ({m['unit']})" if m["unit"] else name
                number(label, value, m["lo"], m["hi"] if m["hi"] is not None else math.inf)
                if m["type"] == "int" and float(value) != int(value):
                    raise ValueError(f"{name} must be a whole number, got {value!r}")
            elif m["type"] in ("text", "path") and not isinstance(value, (str, PurePath)):
                raise ValueError(f"{name} must be {'a path' if m['type'] == 'path' else 'text'}, got {value!r}")


def schema(request_type: type) -> list[dict[str, Any]]:
    """The user's options (kind "value") and maps (kind "image") as plain data: name, type,
    default, min, max, choices, help, kind. Hooks are a program's, not a user's: left out."""
    out = []
    for f in dataclasses.fields(request_type):
        m = meta(f)
        if m["kind"] == "hook":
            continue
        kind = "image" if m["kind"] == "image" else m["type"]
        out.append({"name": f.name, "type": kind, "default": f.default, "min": m["lo"], "max": m["hi"],
                    "choices": list(m["choices"]) if m["choices"] is not None else None, "help": m["help"],
                    "kind": m["kind"]})
    return out
