"""Degradation pipelines declared in YAML: a list of registered, seeded ops, each applied to a
random share of the batch.

    pipeline:
      - {op: gaussian_blur, p: 1.0, sigma_max: 2.5}
      - {op: gaussian_noise, p: 0.5, sigma_max: 10}
      - {op: jpeg, p: 1.0, quality_min: 20, quality_max: 60}

A pipeline ends as a file does: `quantize` (clip to [0, 1], round to 8 bits, or `bits: 16`) is
appended as the last step unless the list already ends with one; a restore task with
`quantize: 0` in its task options trains on unrounded values (a paper protocol, not a user's file).

`p` is the probability that an image gets the op; every other key is a field of the op's
dataclass (unknown keys are config errors naming the entry). Sampling draws, for each op in
order, which images it touches and its parameters from one torch.Generator; applying is
deterministic given those draws, so a degradation replays exactly under its seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .blur import DefocusBlur, GaussianBlur, MotionBlur, Resample
from ..config import ConfigError, build_dataclass
from .camera import CameraNoise
from .degrade import (JPEG, ColorJitter, CorrelatedNoise, GaussianNoise, Holes, PoissonGaussianNoise, Quantize,
                      select)

OPS: dict[str, type] = {
    "gaussian_blur": GaussianBlur,
    "motion_blur": MotionBlur,
    "defocus_blur": DefocusBlur,
    "resample": Resample,
    "gaussian_noise": GaussianNoise,
    "poisson_noise": PoissonGaussianNoise,
    "correlated_noise": CorrelatedNoise,
    "camera_noise": CameraNoise,
    "jpeg": JPEG,
    "color_jitter": ColorJitter,
    "holes": Holes,
    "quantize": Quantize,
}


@dataclass(frozen=True)
class Step:
    name: str
    op: Any
    p: float


def build_pipeline(spec: tuple[dict, ...] | list[dict], source: str = "<pipeline>",
                   key: str = "task_options.pipeline", quantize_bits: int = 8) -> list[Step]:
    """Validated pipeline steps from the YAML list, ending with a `quantize` step to
    `quantize_bits` (unless the list ends with its own, or quantize_bits is 0); errors name the
    entry and the file."""
    steps = []
    for i, entry in enumerate(spec):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict) or "op" not in entry:
            raise ConfigError(f"{source}: '{where}' must be a mapping with an 'op' key, got {entry!r}")
        params = dict(entry)
        name = params.pop("op")
        p = params.pop("p", 1.0)
        if name not in OPS:
            raise ConfigError(f"{source}: '{where}.op': unknown op {name!r} (known: {', '.join(sorted(OPS))})")
        if not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ConfigError(f"{source}: '{where}.p' must be a probability in [0, 1], got {p!r}")
        try:
            op = build_dataclass(OPS[name], params, source, prefix=f"{where}.")
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{source}: '{where}': {exc}") from None
        steps.append(Step(name, op, float(p)))
    if quantize_bits and steps and not (steps[-1].name == "quantize" and steps[-1].p == 1):
        steps.append(Step("quantize", Quantize(quantize_bits), 1.0))
    return steps


def _subset(params: dict, idx: torch.Tensor, b: int) -> dict:
    """The parameters of the images in `idx` (per-image tensors are indexed; the rest kept)."""
    return {k: (v[idx] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == b else v)
            for k, v in params.items()}


def sample_pipeline(steps: list[Step], gen: torch.Generator, shape: tuple[int, ...]) -> list[tuple[torch.Tensor, dict]]:
    """For each step: (which images, parameters). All randomness is drawn here."""
    return [(select(gen, shape[0], s.p), s.op.sample(gen, shape)) for s in steps]


def apply_pipeline(steps: list[Step], draws: list[tuple[torch.Tensor, dict]], x: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(degraded images, hole mask (B, 1, H, W) or None when no step makes holes)."""
    b = x.shape[0]
    mask = None
    for step, (on, params) in zip(steps, draws):
        if isinstance(step.op, Holes) and mask is None:
            mask = torch.zeros(b, 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
        if not on.any():
            continue
        idx = on.nonzero().flatten().to(x.device)
        sub = _subset(params, on.nonzero().flatten(), b)
        y = step.op.apply(x[idx], sub)
        x = x.index_copy(0, idx, y)
        if isinstance(step.op, Holes):
            mask = mask.index_copy(0, idx, torch.maximum(mask[idx], step.op.mask(sub).to(mask)))
    return x, mask
