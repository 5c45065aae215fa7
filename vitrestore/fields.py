"""Ranges and choices live on the fields they bound. A config section, a task's options or a
degradation op declares each number with `bounded(default, lo, hi)` and each closed set with
`among(default, choices)`; `check_fields` checks an instance against them, one line naming the
key and the file. (A task's request declares its options alike with request.option: the same
metadata keys, `lo`, `hi`, `choices`.)

Every number must be finite and in its range (tuple fields item by item, and not empty), every
`<x>_min` at most its `<x>_max`. A test keeps every numeric field of every config section, task
option and op bounded.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

INF = math.inf


def bounded(default: Any, lo: float, hi: float) -> Any:
    """A numeric field (or a tuple of numbers) whose values lie in [lo, hi], both inclusive."""
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi})


def among(default: Any, choices: tuple) -> Any:
    """A field whose value (or each of its items) is one of `choices`."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices)})


def field_range(f: dataclasses.Field) -> tuple[float, float] | None:
    return (f.metadata["lo"], f.metadata["hi"]) if f.metadata.get("lo") is not None else None


def field_choices(f: dataclasses.Field) -> tuple | None:
    return f.metadata.get("choices")


def _fmt(v: float) -> str:
    return "no limit" if v == INF else f"{v:g}"


def _check_item(key: str, value: Any, bounds: tuple[float, float], source: str) -> None:
    """One number of a field: a number (a bool is not one), finite, within `bounds`."""
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source}: {key}: must be a number, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{source}: {key}: must be between {_fmt(lo)} and {_fmt(hi)}, got {value!r}")


def check_fields(obj: Any, source: str, prefix: str, empty_ok: bool = False) -> None:
    """Raise ValueError ('<source>: <prefix><field>: <problem>', one line) for a field of the
    dataclass instance `obj` outside its range or its choices (tuple fields item by item, and
    not empty unless `empty_ok`: a config section, whose lengths are checked with their
    meaning), and for any `<x>_min` above its `<x>_max`."""
    fields = dataclasses.fields(obj)
    names = [f.name for f in fields]
    for f in fields:
        key, value = prefix + f.name, getattr(obj, f.name)
        bounds, allowed = field_range(f), field_choices(f)
        items = value if isinstance(value, tuple) else (value,)
        if isinstance(value, tuple) and not value and (bounds or allowed) and not empty_ok:
            raise ValueError(f"{source}: {key}: must not be empty")
        if allowed is not None:
            for v in items:
                if isinstance(v, bool) != any(isinstance(c, bool) for c in allowed) or v not in allowed:
                    raise ValueError(f"{source}: {key}: must be one of {', '.join(map(str, allowed))}, got {v!r}")
        if bounds is not None:
            for v in items:
                _check_item(key, v, bounds, source)
    for name in names:
        high = name[: -len("_min")] + "_max" if name.endswith("_min") else None
        if high in names and getattr(obj, name) > getattr(obj, high):
            raise ValueError(f"{source}: {prefix}{name}: must not exceed {prefix}{high} ({getattr(obj, high)!r}), "
                             f"got {getattr(obj, name)!r}")
