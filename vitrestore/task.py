"""The contract every task module fills in, as three roles with one caller each.

    TrainingRole       called by the trainer (engine/train.py): the batches it learns from
                       (degradation, validation, paired data), the task's own losses and
                       metrics, and what the weights file must carry besides the generator
    DiscriminatorRole  called by the trainer's adversarial step only: what the discriminator
                       sees beside the candidate, and which candidate it judges
    InferenceRole      called by the runtime (engine/runtime.py), the CLI and the studio: the
                       request's checks, the condition channels, how the network is run over an
                       image, compositing and the final output
    AdaptRole          called by `--adapt` (engine/adapt.py) only: self-supervised pairs made from
                       the run's own inputs, which parameters a short fine-tune may move, and a
                       check that needs no clean image

A task (its modules in tasks/, declared in tasks/<task>_command.py) is `Task`, which composes the three
and adds what all of them share: its name, options and the generator's shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generator

import torch

from . import request as requests
from .config import Config, GeneratorConfig, build_dataclass
from .request import NoRequest, UnknownOption  # noqa: F401  (UnknownOption: the API's error, named here too)


@dataclass(frozen=True)
class Pass:
    """One run of the tiled network that a task's `passes` asks the runtime for: `image`
    (B, 3, H, W), in tiles of `tile` px (0 = whole), the condition built per tile from `request`."""

    image: torch.Tensor
    tile: int
    request: dict[str, Any]


Passes = Generator[Pass, torch.Tensor, torch.Tensor]  # what InferenceRole.passes returns


@dataclass
class Batch:
    """A training or validation batch. All tensors (B, C, H, W) floats in [0, 1] (input may overshoot)."""

    input: torch.Tensor  # what the generator sees (degraded)
    target: torch.Tensor | None  # what it should produce (None: the task has no pixel target)
    cond: torch.Tensor | None = None  # extra conditioning channels, same H, W as input
    loss_weight: torch.Tensor | None = None  # (B, 1, H, W) per-pixel weight of the pixel loss
    real: torch.Tensor | None = None  # what the discriminator sees as real, when not the target
    source: torch.Tensor | None = None  # the picture before the task's pre-processing, when that differs from input

    @property
    def real_sample(self) -> torch.Tensor:
        """The discriminator's real sample: `real`, else the target."""
        return self.target if self.real is None else self.real

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


class TrainingRole:
    """What a task feeds the trainer. The trainer calls `check_training` once before any model
    is built, `degrade` (or `paired_batch` with paired data) for every step's batch,
    `validation_batch` once per held-out image, `finish_batch` and `metrics` at each
    validation, `generator_losses` every step, and `state` whenever it saves weights."""

    def check_training(self, source: str) -> None:
        """Raise ConfigError for task options that cannot train (before any model is built)."""

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        """A training batch from clean crops (B, 3, H, W), every draw from `gen`."""
        raise NotImplementedError

    def validation_batch(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        return self.degrade(clean, gen)

    def paired_batch(self, input: torch.Tensor, target: torch.Tensor) -> Batch:
        """A batch from paired data (degraded input, clean target) instead of a degradation."""
        return Batch(input=input, target=target, cond=self.condition(input))

    def generator_losses(self, output: torch.Tensor, batch: Batch,
                         gen: torch.Generator | None = None) -> tuple[torch.Tensor, dict] | None:
        """The generator's non-adversarial loss and its log entries, for tasks without a pixel
        target (style transfer); None = the configured pixel losses against batch.target,
        weighted by batch.loss_weight. `gen` seeds any sampling (the step's generator, so a
        resumed run repeats it)."""
        return None

    def finish_batch(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The final output for a validation batch (what validation metrics see): the user's
        output by default."""
        return self.postprocess(output, batch.input)

    def metrics(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Validation metrics of a finished output (names without the val_ prefix)."""
        from .metrics import psnr, ssim

        res = {"psnr": psnr(output, batch.target), "ssim": ssim(output, batch.target)}
        if batch.input.shape == batch.target.shape:
            res["psnr_input"] = psnr(batch.input, batch.target)
        return res

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors the task derives from its training data that inference needs (saved in the
        weights file beside the generator's, under 'task.'), e.g. a painting's colour quantiles."""
        return {}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Take back what `state` saved (the keys without the 'task.' prefix); called when
        weights are loaded for inference."""
        if state:
            raise ValueError(f"task {self.name} keeps no state, the weights carry {', '.join(state)}")


class DiscriminatorRole:
    """What the discriminator sees. Called by the trainer's adversarial step only (generator and
    discriminator updates): the discriminator judges `disc_candidate` (a fake) or
    `batch.real_sample` (real), each beside `disc_condition`."""

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
        """Channels of the condition and the candidate together (the discriminator's input)."""
        return gcfg.in_channels + self.cond_channels + gcfg.out_channels


class InferenceRole:
    """How a request runs. The CLI and the studio call `check_request` before reading any image;
    the runtime then runs, per image, the network passes `passes` asks for (each in tiles,
    asking `condition` for each tile's channels), then `postprocess`, and `alpha` for an alpha
    channel. `composite` is the output put back together with the input, which `passes` may use
    between passes (and `postprocess` builds on)."""

    @property
    def scale(self) -> int:
        """Output size / input size (super-resolution tasks override)."""
        return 1

    @property
    def suffix(self) -> str:
        """What output file names get: <stem>_<suffix>.<ext>."""
        return self.output_suffix

    # what a request may carry besides the image, declared once (vitrestore/request.py): its
    # keys, their checks, the maps the ensemble flips, the schema the CLI and the studio are tested against
    Request: ClassVar[type] = NoRequest

    def check_request(self, **request: Any) -> None:
        """Raise ValueError (one line) for request options this task cannot run with: the
        Request's keys (UnknownOption, with the closest known one: a misspelling is an error,
        not a blind run), types and ranges; a task adds, after this, what its fields alone
        cannot say."""
        requests.check(self.Request, self.name, request)

    def condition(self, image: torch.Tensor, **request: Any) -> torch.Tensor | None:
        """Conditioning channels (B, C_cond, H, W) for an input image (B, C, H, W) and request."""
        return None

    def passes(self, image: torch.Tensor, tile: int, **request: Any) -> Passes:
        """The network passes an image needs, as a generator the runtime drives: each
        `yield Pass(x, tile, request)` is answered with that pass's output (B, 3, sH, sW), and
        the generator returns the raw output (before `postprocess`). Default: one pass over the
        image in the user's tiles."""
        return (yield Pass(image, tile, request))

    def composite(self, output: torch.Tensor, image: torch.Tensor, **request: Any) -> torch.Tensor:
        """The network's output (owned by the caller: may be changed in place) in [0, 1], put
        together with the input where the task keeps input pixels."""
        return output.clamp_(0, 1)

    def postprocess(self, output: torch.Tensor, image: torch.Tensor, **request: Any) -> torch.Tensor:
        """The final output for the user: the composite plus any finishing step of the task."""
        return self.composite(output, image, **request)

    def clip_request(self, image: Any, coords: Any) -> dict[str, Any]:
        """A clip's frame: request values for it from `image` (H, W, 3) uint8 and `coords`
        (H, W, 2), where each pixel was in the clip's first frame (vitrestore/motion.py; asked
        only where `tracks_pixels`). Nothing by default: a frame runs as a photo does."""
        return {}

    def alpha(self, alpha: torch.Tensor, scale: int) -> torch.Tensor:
        """The output alpha channel from the input's (B, 1, H, W): kept as is (resized if scale > 1)."""
        if scale == 1:
            return alpha
        return torch.nn.functional.interpolate(alpha, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


class CannotAdapt(ValueError):
    """Why adaptation cannot help these inputs (too few pixels, no noise, all hole), in one line:
    the run goes on with the base model."""


class AdaptRole:
    """What `--adapt` (engine/adapt.py) fine-tunes a copy of the model on: there is no clean
    image, so a task makes its pairs from the inputs themselves. A task declares its objective
    once, as a module (`adapt_with`, e.g. tasks/denoise_adapt.py) holding

        prepare(task, samples, base)  what every step draws from (e.g. the base model's outputs,
                                      a fitted noise model); raises CannotAdapt where it cannot help
        batch(task, prepared, gen)    one training pair: Batch(input, cond, target, loss_weight)
        score(task, prepared, net)    a self-supervised check, lower = better, of the raw
                                      generator net(x, cond), or None (no check)
        trains(name)                  whether generator parameter `name` is fine-tuned

    `samples` are engine/adapt.py Samples (image (1, 3, h, w) in [0, 1] and its request);
    `base(image, **request)` is the base model's finished output. The adapter keeps the copy
    only when it scores lower than the base. A task without `adapt_with` cannot adapt."""

    adapt_with: ClassVar[Any] = None  # the objective's module (None: this task does not adapt)
    adapt_objective: ClassVar[str] = ""  # the objective in a few words (recorded in the adapted file's card)
    adapt_lr: ClassVar[float] = 5e-5  # Adam's step size: small, the copy must stay near the base

    def adapt_prepare(self, samples: list[Any], base: Any) -> Any:
        if self.adapt_with is None:
            raise CannotAdapt(f"the {getattr(self, 'name', '')} task has no adaptation objective")
        return self.adapt_with.prepare(self, samples, base)

    def adapt_batch(self, prepared: Any, gen: torch.Generator) -> Batch:
        return self.adapt_with.batch(self, prepared, gen)

    def adapt_score(self, prepared: Any, net: Any) -> float | None:
        return self.adapt_with.score(self, prepared, net)

    def adapt_trains(self, name: str) -> bool:
        return self.adapt_with.trains(name)


class Task(TrainingRole, DiscriminatorRole, InferenceRole, AdaptRole):
    """A task: subclasses set `name`, `Options`, `output_suffix` (and `contract`, the inference
    contract in words for exported files) and fill in the roles' methods they need."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    output_suffix: ClassVar[str] = "restored"
    # clips (vitrestore/steady.py): whose frames judge where the scene is unchanged: "output" where
    # the model's output is the cleaner picture (denoise, upscale), "input" where outputs differ on
    # purpose on the same content (stylize)
    steady_judge: ClassVar[str] = "output"
    tracks_pixels: ClassVar[bool] = False  # clips: clip_request wants each pixel's place in the first frame
    contract: ClassVar[str] = ""  # the condition channels and pre/post-processing in words (ONNX metadata)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "infer" in vars(cls):  # the runtime no longer calls it: an override would be ignored silently
            raise TypeError(f"{cls.__name__}.infer: tasks declare their network passes in `passes` now "
                            f"(a generator of Pass, vitrestore/task.py)")

    def __init__(self, options: Any = None, source: str = "<options>"):
        if options is None or isinstance(options, dict):
            options = build_dataclass(self.Options, options or {}, source, prefix="task_options.")
        self.options = options

    @classmethod
    def from_config(cls, cfg: Config) -> "Task":
        return cls(cfg.task_options, cfg.source)

    @property
    def cond_channels(self) -> int:
        """Extra channels the generator reads beside the image (the condition's)."""
        return 0

