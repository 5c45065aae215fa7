"""The studio's client-facing error (`ApiError`: an HTTP status and a one-line message) and the
helpers that keep its messages short: a client's value shortened, an exception in one line."""
from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, log: bool = False):
        super().__init__(message)
        self.status = status
        self.log = log  # also one line in the studio's log (a client that went away mid-upload)


def _shown(value: Any, limit: int = 40) -> str:
    """A client's value as JSON, shortened: error messages never echo a whole body back."""
    text = json.dumps(value[: 2 * limit] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
