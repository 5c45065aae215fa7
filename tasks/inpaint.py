"""Inpainting: fill the holes of an image plausibly.

The generator sees the image with its holes set to 0 and the hole mask as one conditioning
channel (1 = fill); the discriminator sees the same plus the candidate. Training masks come
from `vitrestore.masks.MaskMix` (thin and thick brush strokes, LaMa-style large masks, boxes,
scratches). The pixel loss weighs hole pixels `hole_weight` times more than the rest; the
output outside the hole is the input's, exactly (composited back in `postprocess`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vitrestore.masks import MaskMix, batch_masks
from vitrestore.registry import register
from vitrestore.task import Batch, Task, as_unit


@dataclass(frozen=True)
class InpaintOptions:
    hole_weight: float = 6.0  # pixel-loss weight inside the hole (1 outside)
    thin: float = 0.25  # mask mixture probabilities
    thick: float = 0.25
    large: float = 0.3
    boxes: float = 0.1
    scratches: float = 0.1


@register
class Inpaint(Task):
    name = "inpaint"
    Options = InpaintOptions
    output_suffix = "inpainted"
    description = "fill holes given by a mask (or a key colour)"

    @property
    def cond_channels(self) -> int:
        return 1

    def masks(self) -> MaskMix:
        o = self.options
        return MaskMix(o.thin, o.thick, o.large, o.boxes, o.scratches)

    def with_holes(self, clean: torch.Tensor, mask: torch.Tensor) -> Batch:
        holed = clean * (1 - mask)
        weight = 1 + (self.options.hole_weight - 1) * mask
        return Batch(input=holed, target=clean, cond=mask, mask=weight)

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        b, _, h, w = clean.shape
        return self.with_holes(clean, batch_masks(self.masks(), b, h, w, gen).to(clean))

    def finish_batch(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.postprocess(output, batch.input, mask=batch.cond)

    def condition(self, image: torch.Tensor, mask: torch.Tensor | None = None, **request: Any) -> torch.Tensor:
        """The mask (B, 1, H, W), 1 = fill, as given by the user (sliced per tile by the caller)."""
        if mask is None:
            raise ValueError("inpainting needs a mask (--mask or --mask-color)")
        return mask

    def postprocess(self, output: torch.Tensor, image: torch.Tensor, mask: torch.Tensor | None = None,
                    **request: Any) -> torch.Tensor:
        """Known pixels are the input's, exactly; the network's output only fills the hole."""
        output = output.clamp_(0, 1)
        if mask is None:
            return output
        m = mask.to(output)
        return output.mul_(m).add_(as_unit(image).to(output).mul_(1 - m))
