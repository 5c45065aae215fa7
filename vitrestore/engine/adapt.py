"""`--adapt`: fine-tune a copy of a model on this run's own inputs before processing them.

There are no clean references, so the task makes self-supervised pairs from the inputs
(`Task.adapt_prepare` / `adapt_batch`, vitrestore/task.py AdaptRole). This module is the
task-agnostic loop around them:

    samples   up to `max_pixels` of the run's inputs, pooled (one adaptation for a folder: it
              usually comes from one camera, scanner or tool), as crops of at most `SAMPLE_SIDE`
    budget    `seconds` of wall time for everything (preparation, steps, the check): the step
              count is fixed after timing the first steps, so a run is repeatable from its card's
              step count (`steps`), and the learning rate follows a cosine over it
    steps     Adam on the parameters the task names (`adapt_trains`), batch 1, fp32, seeded
    check     the task's self-supervised score (`adapt_score`) of the base and the adapted copy:
              the copy is kept only when it scores lower, else the run goes on with the base
              model and says so

The base model is never changed: the copy is a deep copy of its generator.
"""
from __future__ import annotations

import copy
import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from ..task import CannotAdapt
from ..weights import TASK_PREFIX, save_weights

SAMPLE_SIDE = 512  # largest crop kept of one input (the pooled sample stays bounded whatever the photos)
MIN_SIDE = 32  # a sample smaller than this on a side teaches nothing
CALIBRATION_STEPS = 3  # steps timed to turn seconds into a step count


@dataclass(frozen=True)
class AdaptSettings:
    seconds: float = 60.0  # wall-time budget of the whole adaptation
    steps: int | None = None  # a fixed step count instead (repeatable on any machine)
    seed: int = 0
    max_pixels: int | None = None  # pooled sample size; None: 1 MP per 30 s of budget, within [0.5, 4] MP

    @property
    def sample_pixels(self) -> int:
        if self.max_pixels is not None:
            return self.max_pixels
        if self.steps is not None:
            return 4_000_000
        return int(min(4.0, max(0.5, self.seconds / 30)) * 1e6)

    def check(self) -> None:
        """ValueError in one line for a budget that cannot run."""
        if self.steps is not None:
            if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
                raise ValueError(f"--adapt-steps must be a whole number of steps, at least 1, got {self.steps!r}")
        elif not (isinstance(self.seconds, (int, float)) and math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"--adapt must be a number of seconds above 0, got {self.seconds!r}")


@dataclass
class Sample:
    """One pooled input: a crop of an image (1, 3, h, w) float in [0, 1] and its request (e.g.
    its mask, cut the same way)."""

    image: torch.Tensor
    request: dict = field(default_factory=dict)
    name: str = ""


def sample_crop(image: torch.Tensor, request: dict, gen: torch.Generator, name: str = "",
                side: int = SAMPLE_SIDE) -> Sample:
    """A crop of at most side x side of image (1, C, H, W) (RGB kept, alpha dropped, uint
    scaled to [0, 1]) at a seeded place, the request's maps (e.g. a mask) cut alike."""
    from ..task import as_unit

    _, c, h, w = image.shape
    ch, cw = min(h, side), min(w, side)
    i = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
    j = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
    rgb = image[:, :3] if c >= 3 else image[:, :1].expand(-1, 3, -1, -1)
    crop = as_unit(rgb[..., i:i + ch, j:j + cw].contiguous())
    req = {k: (v[..., i:i + ch, j:j + cw].contiguous() if torch.is_tensor(v) and v.dim() >= 2 else v)
           for k, v in request.items()}
    return Sample(crop, req, name)


MAX_SAMPLES = 256  # images in a pooled sample at most (each is read once, before the run)


def pooled_samples(items: list[Any], load: Callable[[Any], tuple[torch.Tensor, dict]], settings: AdaptSettings,
                   on_error: Callable[[Any, str], None] | None = None) -> list[Sample]:
    """The pooled sample of a run: crops of its inputs, taken in a seeded random order of all
    `items` (all the run's files, so that rerunning a command to finish a folder adapts the same
    way) until `settings.sample_pixels` or MAX_SAMPLES is reached. Each is read by
    `load(item) -> (image (1, C, H, W), request)`, one at a time (memory: the crops only). An
    input `load` cannot read (ValueError, OSError) is left out and named to
    `on_error(item, reason)`; the run itself reports it as usual."""
    gen = torch.Generator().manual_seed(settings.seed)
    samples, pixels = [], 0
    for k in torch.randperm(len(items), generator=gen).tolist():
        if pixels >= settings.sample_pixels or len(samples) >= MAX_SAMPLES:
            break
        try:
            image, request = load(items[k])
        except (ValueError, OSError) as exc:
            if on_error is not None:
                on_error(items[k], str(exc))
            continue
        samples.append(sample_crop(image, request, gen, str(items[k])))
        pixels += samples[-1].image.shape[-2] * samples[-1].image.shape[-1]
    return samples


@dataclass
class AdaptResult:
    """What happened: the objective, the work done, the check, and whether the copy is used."""

    objective: str
    images: int
    megapixels: float
    steps: int = 0
    seconds: float = 0.0
    loss_first: float = float("nan")
    loss_last: float = float("nan")
    score_base: float | None = None
    score_adapted: float | None = None
    kept: bool = False
    reason: str = ""  # why the base model is used instead (CannotAdapt, or the check)
    base_digest: str = ""  # sha256 of the base generator's tensors
    adapted: Any = None  # the adapted Model, kept or not (benchmarks compare it either way)

    def line(self) -> str:
        head = (f"adapt: {self.steps} steps in {self.seconds:.0f} s on {self.images} image(s), "
                f"{self.megapixels:.2f} MP ({self.objective})")
        if self.score_base is not None and self.score_adapted is not None:
            head += f"; self-check {self.score_base:.3g} -> {self.score_adapted:.3g}"
        elif self.steps:
            head += "; no self-check for these inputs"
        return head + ("; using the adapted copy" if self.kept else f"; {self.reason}; using the base model")

    def card(self) -> dict:
        return {"objective": self.objective, "images": self.images, "megapixels": round(self.megapixels, 3),
                "steps": self.steps, "seconds": round(self.seconds, 1), "loss_first": self.loss_first,
                "loss_last": self.loss_last, "score_base": self.score_base, "score_adapted": self.score_adapted}


def tensors_digest(gen: torch.nn.Module) -> str:
    """sha256 of a generator's tensors (names, shapes, fp32 bytes), in hex: which weights a copy
    was adapted from (unlike the ONNX cache key, it ignores code and library versions)."""
    h = hashlib.sha256()
    for k, v in sorted(gen.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


def _lr(base: float, step: int, total: int) -> float:
    """Cosine from `base` to a tenth of it over `total` steps."""
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, total))))


def adapt(model: Any, samples: list[Sample], settings: AdaptSettings, quiet: bool = False,
          progress: Callable[[int, int], None] | None = None) -> tuple[Any, AdaptResult]:
    """(the model to process with, what happened). `model` is an engine/runtime.py Model and is
    never changed; the adapted one is a new Model around a fine-tuned copy of its generator
    (same tile, ensemble, backend). `progress(step, total)` is called after every step (the
    studio's progress bar; an exception it raises, e.g. a cancel, ends the adaptation). A
    KeyboardInterrupt propagates (nothing has been written). The process's random state is
    left as it was (the steps draw from their own seeded generators)."""
    state = torch.get_rng_state()
    try:
        return _adapt(model, samples, settings, quiet, progress)
    finally:
        torch.set_rng_state(state)


def _adapt(model: Any, samples: list[Sample], settings: AdaptSettings, quiet: bool,
           progress: Callable[[int, int], None] | None) -> tuple[Any, AdaptResult]:
    settings.check()
    task, start = model.task, time.monotonic()
    mp = sum(s.image.shape[-2] * s.image.shape[-1] for s in samples) / 1e6
    res = AdaptResult(task.adapt_objective or "none", len(samples), mp, base_digest=tensors_digest(model.generator))
    if not samples:
        res.reason = "no readable image to adapt on"
        return model, res
    if task.adapt_with is None:
        res.reason = f"the {task.name} task has no adaptation objective"
        return model, res
    samples = [s for s in samples if min(s.image.shape[-2:]) >= MIN_SIDE]
    if not samples:
        res.reason = f"too few pixels to adapt on (every image is under {MIN_SIDE} px on a side)"
        return model, res
    torch.manual_seed(settings.seed)  # dropout and any unseeded draw in the task
    gen = torch.Generator().manual_seed(settings.seed)

    def base(image: torch.Tensor, **request: Any) -> torch.Tensor:
        return model.run_tensor(image, **request).cpu()

    try:
        prepared = task.adapt_prepare(samples, base)
    except CannotAdapt as exc:
        res.reason = str(exc)
        return model, res
    # fp32 on the model's device; the base's generator is never touched
    net = copy.deepcopy(model.generator).float().to(model.device).train()
    for n, p in net.named_parameters():
        p.requires_grad_(task.adapt_trains(n))
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"the {task.name} task trains no parameter of this generator")
    t_check = time.monotonic()
    score_base = task.adapt_score(prepared, _frozen(model.generator))
    t_check = time.monotonic() - t_check  # the final check will take about as long
    deadline = start + (settings.seconds or 0.0) - t_check
    opt = torch.optim.Adam(params, lr=task.adapt_lr)
    # a budget in seconds: the step count is re-estimated from the steps' own pace (after the
    # first CALIBRATION_STEPS, slow with allocation) and the cosine stretched to it; the loop
    # also stops at the deadline, however the machine's load changes
    total = settings.steps or 2 * CALIBRATION_STEPS
    bar = tqdm(total=settings.steps, disable=quiet, unit="step", desc="adapt", dynamic_ncols=True, file=sys.stderr)
    losses: list[float] = []
    step, t_timed = 0, 0.0
    try:
        while step < total:
            if step == CALIBRATION_STEPS:
                t_timed = time.monotonic()
            for group in opt.param_groups:
                group["lr"] = _lr(task.adapt_lr, step, total)
            batch = task.adapt_batch(prepared, gen).to(model.device)
            loss = _loss(net(batch.input, batch.cond), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            if progress is not None:
                progress(step, total)
            if settings.steps is None and step >= 2 * CALIBRATION_STEPS:
                now = time.monotonic()
                per = (now - t_timed) / (step - CALIBRATION_STEPS)
                total = step + max(0, int((deadline - now) / per))
                if bar.total != total:
                    bar.total = total
                    bar.refresh()
    finally:
        bar.close()
    net.eval()
    res.steps, res.loss_first, res.loss_last = step, _mean(losses[:10]), _mean(losses[-10:])
    res.score_base, res.score_adapted = score_base, task.adapt_score(prepared, _frozen(net))
    res.seconds = time.monotonic() - start
    # an adapted copy runs in PyTorch: an ONNX export per copy would fill the cache (same speed: README)
    res.adapted = model.with_generator(net.cpu() if model.device.type == "cpu" else net,
                                       backend="torch" if model.backend == "onnx" else None)
    if res.score_base is not None and not res.score_adapted < res.score_base:
        res.reason = "the adapted copy did not beat the base model on the self-check"
        return model, res
    res.kept = True
    return res.adapted, res


def _frozen(gen: torch.nn.Module) -> Callable:
    """gen as a no-grad function net(x, cond) on CPU tensors (run on gen's device, in fp32)."""
    @torch.no_grad()
    def net(x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return gen(x.to(_device(gen)), None if cond is None else cond.to(_device(gen))).float().cpu()
    return net


def _device(gen: torch.nn.Module) -> torch.device:
    return next(gen.parameters()).device


def _loss(out: torch.Tensor, batch: Any) -> torch.Tensor:
    """L1 to the target, weighted per pixel where the batch says (mean over the weighted pixels)."""
    diff = (out - batch.target).abs()
    if batch.loss_weight is None:
        return diff.mean()
    w = batch.loss_weight.expand_as(diff)
    return (diff * w).sum() / w.sum().clamp_min(1e-8)


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else float("nan")


def save_adapted(path: str | Path, adapted: Any, result: AdaptResult, base_name: str, command: str) -> None:
    """The adapted model as a weights file usable with --model (atomic write). Its card is the
    base's, plus what it was adapted on (`adapted`: the base's name and generator digest, the
    objective, images, megapixels, steps, seconds and the self-check)."""
    state = dict(adapted.generator.state_dict())
    state.update({TASK_PREFIX + k: v for k, v in adapted.task.state().items()})
    card = {**adapted.card, "command": command,
            "adapted": {"base": base_name, "base_digest": result.base_digest, **result.card()}}
    save_weights(path, state, adapted.config, card)
