"""The contract every task module fills in.

A task turns clean images into training pairs (its degradation), declares the extra
conditioning channels its generator reads, builds those channels at inference time from the
user's request, and post-processes the network output.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .config import Config, GeneratorConfig, build_dataclass


@dataclass
class Batch:
    """A training or validation batch. All tensors (B, C, H, W) floats in [0, 1] (input may overshoot)."""

    input: torch.Tensor  # what the generator sees (degraded)
    target: torch.Tensor  # what it should produce
    cond: torch.Tensor | None = None  # extra conditioning channels, same H, W as input
    mask: torch.Tensor | None = None  # (B, 1, H, W) per-pixel loss weight, when the task has one
    source: torch.Tensor | None = None  # the picture before the task's pre-processing, when that differs from input

    def to(self, device: torch.device) -> "Batch":
        return Batch(**{k: (v.to(device, non_blocking=True) if v is not None else None) for k, v in vars(self).items()})

    def split(self, n: int) -> list["Batch"]:
        """n micro-batches along the batch dimension (gradient accumulation)."""
        if n == 1:
            return [self]
        parts = {k: (v.chunk(n) if v is not None else [None] * n) for k, v in vars(self).items()}
        return [Batch(**{k: parts[k][i] for k in parts}) for i in range(n)]


def as_unit(t: torch.Tensor) -> torch.Tensor:
    """A float tensor in [0, 1] from float, uint8 or uint16 pixels (inference inputs keep their dtype)."""
    peak = {torch.uint8: 255.0, torch.uint16: 65535.0}.get(t.dtype)
    return t.float().div_(peak) if peak else t.float()


@dataclass(frozen=True)
class NoOptions:
    pass


class Task:
    """Base class: subclasses set `name`, `Options`, `output_suffix` and override the hooks."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    output_suffix: ClassVar[str] = "restored"
    contract: ClassVar[str] = ""  # the condition channels and pre/post-processing in words (ONNX metadata)

    def __init__(self, options: Any = None, source: str = "<options>"):
        if options is None or isinstance(options, dict):
            options = build_dataclass(self.Options, options or {}, source, prefix="task_options.")
        self.options = options

    @classmethod
    def from_config(cls, cfg: Config) -> "Task":
        return cls(cfg.task_options, cfg.source)

    # --- model shape -------------------------------------------------------------------------
    @property
    def cond_channels(self) -> int:
        return 0

    def generator_config(self, cfg: GeneratorConfig) -> GeneratorConfig:
        """The generator config with the task's conditioning/scale filled in."""
        return dataclasses.replace(cfg, cond_channels=self.cond_channels)

    # --- training ----------------------------------------------------------------------------
    def check_training(self, source: str) -> None:
        """Raise ConfigError for task options that cannot train (before any model is built)."""

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        raise NotImplementedError

    def validation_batch(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        return self.degrade(clean, gen)

    def paired_batch(self, input: torch.Tensor, target: torch.Tensor) -> Batch:
        """A batch from paired data (degraded input, clean target) instead of a degradation."""
        return Batch(input=input, target=target, cond=self.condition(input))

    @property
    def scale(self) -> int:
        """Output size / input size (super-resolution tasks override)."""
        return 1

    @property
    def suffix(self) -> str:
        """What output file names get: <stem>_<suffix>.<ext>."""
        return self.output_suffix

    def generator_losses(self, output: torch.Tensor, batch: Batch,
                         gen: torch.Generator | None = None) -> tuple[torch.Tensor, dict] | None:
        """The generator's non-adversarial loss and its log entries, for tasks without a pixel
        target (style transfer); None = the configured pixel losses against batch.target.
        `gen` seeds any sampling (the step's generator, so a resumed run repeats it)."""
        return None

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Validation metrics of a finished output (names without the val_ prefix)."""
        from .metrics import psnr, ssim

        res = {"psnr": psnr(output, batch.target), "ssim": ssim(output, batch.target)}
        if batch.input.shape == batch.target.shape:
            res["psnr_input"] = psnr(batch.input, batch.target)
        return res

    def disc_condition(self, batch: Batch) -> torch.Tensor:
        """What the discriminator sees beside the candidate, at the candidate's size."""
        parts = [batch.input] + ([batch.cond] if batch.cond is not None else [])
        return torch.cat(parts, 1)

    def disc_candidate(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """What the discriminator judges as the fake, from the generator's raw output (kept
        differentiable): the output itself, or e.g. inpainting's composite, so that only what
        the user will see (the filled hole) is judged and gets the adversarial gradient."""
        return output

    def disc_in_channels(self, gcfg: GeneratorConfig) -> int:
        return gcfg.in_channels + self.cond_channels + gcfg.out_channels

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors the task derives from its training data that inference needs (saved in the
        weights file beside the generator's, under 'task.'), e.g. a painting's colour quantiles."""
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take back what `state` saved (the keys without the 'task.' prefix)."""
        if state:
            raise ValueError(f"task {self.name} keeps no state, the weights carry {', '.join(state)}")

    # --- inference ---------------------------------------------------------------------------
    def condition(self, image: torch.Tensor, **request: Any) -> torch.Tensor | None:
        """Conditioning channels (B, C_cond, H, W) for an input image (B, C, H, W) and request."""
        return None

    def alpha(self, alpha: torch.Tensor, scale: int) -> torch.Tensor:
        """The output alpha channel from the input's (B, 1, H, W): kept as is (resized if scale > 1)."""
        if scale == 1:
            return alpha
        return torch.nn.functional.interpolate(alpha, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)

    def infer(self, run: Any, image: torch.Tensor, tile: int, **request: Any) -> torch.Tensor:
        """How inference runs the network: `run(x, tile, **request)` is the tiled network.
        Default: tiles of the user's size over the whole image."""
        return run(image, tile, **request)

    def finish_batch(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The final output for a training/validation batch (what validation metrics see)."""
        return self.postprocess(output, batch.input)

    def postprocess(self, output: torch.Tensor, image: torch.Tensor, **request: Any) -> torch.Tensor:
        """The final output from the network's (owned by the caller: may be changed in place)."""
        return output.clamp_(0, 1)
