"""Task registry: tasks register themselves explicitly; lookup by name happens only here."""
from __future__ import annotations

from .task import Task

_TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a Task available under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} registered twice")
    _TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    try:
        return _TASKS[name]
    except KeyError:
        known = ", ".join(sorted(_TASKS)) or "none registered"
        raise KeyError(f"unknown task {name!r} (known: {known})") from None


def task_names() -> list[str]:
    return sorted(_TASKS)
