"""Validation sample grids: one row per image, input | output | target, written as PNG."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..io.images import write_image


def save_grid(path: Path, rows: list[tuple[torch.Tensor, ...]], gap: int = 4) -> None:
    """rows of (1, 3, h, w) tensors in [0, 1]; smaller inputs (super-resolution) are shown enlarged
    with nearest-neighbour so their pixels stay visible."""
    lines = []
    for row in rows:
        h, w = row[-1].shape[-2:]
        cells = []
        for t in row:
            t = t[:1, :3].float().clamp(0, 1)
            t = t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t  # a mask or a probability map: grey
            if t.shape[-2:] != (h, w):
                t = F.interpolate(t, size=(h, w), mode="nearest")
            cells += [t, torch.ones(1, 3, h, gap)]
        lines.append(torch.cat(cells[:-1], 3))
    width = max(line.shape[-1] for line in lines)
    padded = []
    for line in lines:
        padded += [F.pad(line, (0, width - line.shape[-1]), value=1.0), torch.ones(1, 3, gap, width)]
    grid = torch.cat(padded[:-1], 2)[0]  # (3, H, W)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, (grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
