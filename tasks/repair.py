"""Repair: the damage detector of `vitrestore repair`, trained on synthetic
old-photo damage (tasks/repair_damage.py).

Training: each clean crop is aged and damaged (`OldPhoto`, seeded from the step's generator);
the generator (out_channels 1, no residual) sees the damaged scan and predicts the damage's logit
per pixel, with a binary cross-entropy that weighs damaged pixels `pos_weight` times (they are a
few percent of the photo). Validation: the damage probability, and F1 at `threshold` with a
1-pixel tolerance (a detected pixel counts as right within 1 px of true damage, a true pixel as
found within 1 px of a detection).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vitrestore.config import check_options
from vitrestore.fields import bounded
from vitrestore.task import Batch, Task

from .repair_command import COMMAND
from .repair_damage import OldPhoto


@dataclass(frozen=True)
class RepairOptions:
    pos_weight: float = bounded(4.0, 0.1, 100)  # weight of the damaged pixels in the loss
    threshold: float = bounded(0.85, 0.01, 0.999)  # probability above which a pixel is damage: validation, and
    # the command at its default sensitivity 0.5; picked by benchmarks/tune_repair.py on CBSD68 (not a benchmark
    # set) for the shipped detector: F1 0.858 there, 0.002 under the best (at 0.7-0.8), with half the false fills


def f1_within(pred: torch.Tensor, true: torch.Tensor, px: int = 1) -> tuple[float, float, float]:
    """(precision, recall, F1) of two (B, 1, H, W) {0, 1} masks, each pixel matched within `px`."""
    k = 2 * px + 1
    grow = lambda m: F.max_pool2d(m, k, stride=1, padding=px)  # noqa: E731
    tp_p = float((pred * grow(true)).sum())
    tp_r = float((true * grow(pred)).sum())
    precision = tp_p / max(float(pred.sum()), 1.0)
    recall = tp_r / max(float(true.sum()), 1.0)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def cut_logit(threshold: float, sensitivity: float) -> float:
    """The logit a pixel's must pass to count as damage: the model's `threshold` probability at
    sensitivity 0.5, moving by SENSITIVITY_SPAN logits across the range (sensitivity 0: 4 above, a
    probability near 0.997 for threshold 0.85; 1: 4 below, near 0.09)."""
    return math.log(threshold / (1 - threshold)) + SENSITIVITY_SPAN * (0.5 - sensitivity)


SENSITIVITY_SPAN = 8.0


class Repair(Task):
    name = COMMAND.task
    Options = RepairOptions
    Request = COMMAND.request
    output_suffix = "damage"  # the model alone gives the damage mask (`vitrestore repair` names its photos _repaired)
    contract = "output (B, 1, H, W): the damage's logit per pixel (sigmoid: the probability)."

    def __init__(self, options=None, source: str = "<options>"):
        super().__init__(options, source)
        check_options(self.options, source)
        self.damage = OldPhoto()

    def check_training(self, source: str) -> None:
        pass

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        photos = clean.permute(0, 2, 3, 1).float().numpy()  # (B, H, W, 3)
        damaged, masks = [], []
        for photo in photos:
            _, d, m = self.damage(np.ascontiguousarray(photo), gen)
            damaged.append(d)
            masks.append(m)
        x = torch.from_numpy(np.stack(damaged)).permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W)
        y = torch.from_numpy(np.stack(masks))[:, None]  # (B, 1, H, W)
        return Batch(input=x, target=y)

    def generator_losses(self, output, batch, gen=None):
        w = torch.tensor(self.options.pos_weight, device=output.device)
        loss = F.binary_cross_entropy_with_logits(output[:, :1], batch.target, pos_weight=w)
        return loss, {"bce": float(loss.detach())}

    def finish_batch(self, output, batch):
        return torch.sigmoid(output[:, :1])

    def postprocess(self, output, image, sensitivity=None, **request):
        """The damage mask (B, 3, H, W) {0, 1} (grey, for the command's fill): the logit above
        cut_logit(sensitivity)."""
        cut = cut_logit(self.options.threshold, 0.5 if sensitivity is None else float(sensitivity))
        return (output[:, :1] > cut).float().expand(-1, 3, -1, -1).contiguous()

    def metrics(self, output, batch):
        p, r, f1 = f1_within((output > self.options.threshold).float(), batch.target.to(output))
        return {"f1": f1, "precision": p, "recall": r}
