"""The side-by-side grid both galleries write: one labelled row per photo (its tiles with white
gaps), column names on top, saved as a PNG."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def label(width: int, text: str) -> np.ndarray:
    """(22, width, 3) white bar with `text` in black."""
    bar = np.full((22, width, 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def side_by_side(tiles: list[np.ndarray], gap: int) -> np.ndarray:
    """(h, w, 3) uint8 tiles of one height joined left to right with `gap` px of white."""
    sep = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
    row = tiles[0]
    for t in tiles[1:]:
        row = np.hstack([row, sep, t])
    return row


def write_grid(out: Path, rows: list[np.ndarray], names: list[str], column: int, gap: int) -> None:
    """Stack `rows` (padded white to the widest) under a header naming each `column`-px column."""
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    head = np.full((22, width, 3), 255, np.uint8)
    for i, n in enumerate(names):
        cv2.putText(head, n, (i * (column + gap) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    img = np.vstack([head] + rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{out}: {img.shape[1]}x{img.shape[0]}, {out.stat().st_size / 1e6:.2f} MB")
