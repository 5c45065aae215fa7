"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to everything the
discriminator sees, real and fake alike, so it cannot memorise a small training set.

The condition and candidate are stacked along channels before augmenting so that both get
the same geometric transform.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels, filling with zeros. (B, C, H, W)."""
    b, _, h, w = x.shape
    sh, sw = max(1, int(h * ratio)), max(1, int(w * ratio))
    dy = torch.randint(-sh, sh + 1, (b,), generator=gen).tolist()
    dx = torch.randint(-sw, sw + 1, (b,), generator=gen).tolist()
    padded = F.pad(x, (sw, sw, sh, sh))
    return torch.stack([padded[i, :, sh - dy[i] : sh - dy[i] + h, sw - dx[i] : sw - dx[i] + w] for i in range(b)])


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.25) -> torch.Tensor:
    """Zero one random square of ratio * size per image."""
    b, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio)), max(1, int(w * ratio))
    top = torch.randint(0, h - ch + 1, (b,), generator=gen).tolist()
    left = torch.randint(0, w - cw + 1, (b,), generator=gen).tolist()
    mask = torch.ones(b, 1, h, w, device=x.device, dtype=x.dtype)
    for i in range(b):
        mask[i, :, top[i] : top[i] + ch, left[i] : left[i] + cw] = 0
    return x * mask


def crop(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """A random ratio * size window of each image (B, C, h, w): the discriminator judges a part
    of every picture, at a fraction of the cost (its patches are local anyway)."""
    b, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio)), max(1, int(w * ratio))
    top = torch.randint(0, h - ch + 1, (b,), generator=gen).tolist()
    left = torch.randint(0, w - cw + 1, (b,), generator=gen).tolist()
    return torch.stack([x[i, :, top[i] : top[i] + ch, left[i] : left[i] + cw] for i in range(b)])


AUGMENTS = {"translation": translation, "cutout": cutout, "crop": crop}


def diff_augment(x: torch.Tensor, policy: str, gen: torch.Generator) -> torch.Tensor:
    """Apply the comma-separated `policy` (e.g. "translation,cutout"); "" does nothing."""
    for name in filter(None, (p.strip() for p in policy.split(","))):
        if name not in AUGMENTS:
            raise ValueError(f"unknown DiffAugment op {name!r} (known: {', '.join(AUGMENTS)})")
        x = AUGMENTS[name](x, gen)
    return x
