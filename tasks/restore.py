"""A restoration task defined entirely in YAML: the degradation is a pipeline of registered,
seeded ops (vitrestore/ops/pipeline.py), losses come from the `loss:` section, and the
conditioning is chosen by name. Trained weights carry the config, so

    vitrestore restore photo.png --weights runs/my_deblur/weights.safetensors

rebuilds the task and its network from the file alone.

    task: restore
    task_options:
      name: deblur                 # what outputs are called: photo_deblur.png
      condition: none              # none | mask (the pipeline's holes, as one channel)
      pipeline:
        - {op: motion_blur, p: 0.5, length_max: 15}
        - {op: gaussian_noise, p: 1.0, sigma_max: 3}
      quantize: 8                  # the pipeline ends as an 8-bit file (16, or 0 = never rounded)

With paired data (data.input) the pipeline is not used: inputs come from the files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from vitrestore.config import ConfigError, check_options
from vitrestore.fields import among
from vitrestore.ops.pipeline import Step, apply_pipeline, build_pipeline, sample_pipeline
from vitrestore.task import Batch, Task

from .restore_command import COMMAND

CONDITIONS = ("none", "mask")


@dataclass(frozen=True)
class RestoreOptions:
    name: str = "restored"
    condition: str = among("none", CONDITIONS)
    pipeline: tuple[dict[str, Any], ...] = ()
    # bits of the degraded file the pipeline ends with (8 or 16; 0 = unrounded floats)
    quantize: int = among(8, (0, 8, 16))


def _check_ops(spec: tuple[dict, ...], steps: list[Step], source: str) -> None:
    """Each declared op's parameters within their declared ranges and choices (vitrestore/fields.py), and its
    `p` a number, not true/false (the steps after the declared ones are added, not the user's)."""
    for i, (entry, step) in enumerate(zip(spec, steps)):
        if isinstance(entry.get("p"), bool):
            raise ConfigError(f"{source}: task_options.pipeline[{i}].p: must be a probability in [0, 1], "
                              f"got {entry['p']!r}")
        check_options(step.op, source, f"task_options.pipeline[{i}].")


class Restore(Task):
    contract = "cond (when cond_channels is 1): the mask of the area to restore, 1 = restore; else none."
    name = COMMAND.task
    Options = RestoreOptions
    Request = COMMAND.request

    def __init__(self, options: Any = None, source: str = "<options>"):
        super().__init__(options, source)
        o: RestoreOptions = self.options
        check_options(o, source)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", o.name):
            raise ConfigError(f"{source}: task_options.name: must be a short file-name word, got {o.name!r}")
        self.steps = build_pipeline(o.pipeline, source, quantize_bits=o.quantize)
        _check_ops(o.pipeline, self.steps, source)
        if o.condition == "mask" and not any(s.name == "holes" for s in self.steps):
            raise ConfigError(f"{source}: 'task_options.condition: mask' needs a 'holes' op in the pipeline")

    @classmethod
    def from_config(cls, cfg) -> "Restore":
        task = cls(cfg.task_options, cfg.source)
        if not task.steps and not cfg.data.input:
            raise ConfigError(f"{cfg.source}: 'task_options.pipeline' is empty: declare degradation ops, "
                              f"or give paired data with data.input")
        return task

    @property
    def suffix(self) -> str:
        return self.options.name

    @property
    def cond_channels(self) -> int:
        return 1 if self.options.condition == "mask" else 0

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        draws = sample_pipeline(self.steps, gen, tuple(clean.shape))
        degraded, mask = apply_pipeline(self.steps, draws, clean)
        cond = mask if self.options.condition == "mask" else None
        return Batch(input=degraded, target=clean, cond=cond)

    def paired_batch(self, input: torch.Tensor, target: torch.Tensor) -> Batch:
        if self.options.condition == "mask":
            raise ConfigError("task_options.condition: mask cannot be used with paired data (no mask is known)")
        return Batch(input=input, target=target)

    def check_request(self, mask: torch.Tensor | None = None, **request: Any) -> None:
        super().check_request(mask=mask, **request)
        if self.options.condition == "mask" and mask is None:
            raise ValueError("this model needs a mask of the area to restore")

    def condition(self, image: torch.Tensor, mask: torch.Tensor | None = None, **request: Any):
        self.check_request(mask=mask)  # also reached from paired training data, which has no mask
        return mask if self.options.condition == "mask" else None
