"""`upscale --adapt`: teach the upscaler how this run's small images were made, from the images
themselves (internal pairs, in the spirit of ZSSR / MZSR), with no high-resolution reference.

Objective (measured on Set14 / CBSD432 thumbnails: benchmarks/bench_adapt_upscale.py):

    1. which downscaler made the photos: the base model's outputs SR(x) on the pooled samples,
       shrunk again by each candidate (vitrestore/ops/downscale.py: MATLAB bicubic, OpenCV area /
       linear / cubic, Pillow Lanczos / bilinear); the candidate whose shrunk SR(x) is closest to
       x (mean L1 away from the borders, over all samples) is taken as the photos' downscaler:
       a model output consistent with x under D is what D's inputs look like
    2. internal pairs: each sample x (cut to a multiple of the scale) shrunk once more by that
       downscaler and quantised to 8 bits, as a file would be: (D(x), x), one smaller copy of the
       same scene made by the same tool
    3. a batch per step: PAIRS patches of (D(x), x) at random aligned places of random samples,
       mirrored / rotated (8 ways), plus PULLS patches of (x, BP(SR(x))), weighted PULL_WEIGHT: a
       pull towards the base model's outputs at the photos' own scale, back-projected (BACK_PROJECT
       rounds) so that they shrink back to x under the picked downscaler, so the copy learns the
       downscaler from the smaller copies without forgetting what the full-scale pictures look like
    4. every parameter is fine-tuned (the kernel shows in the upsampling head, the aliasing
       patterns in every level)

The check (`score`): the L1 of the network on the internal pairs (D(x), x) of the samples, on
their held-out part (the bottom HOLD_OUT of each smaller copy's rows, never trained on; the
network sees the whole copy); the adapted copy must lower it. CannotAdapt where the smaller copy would be under MIN_PATCH px.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vitrestore.ops.degrade import quantize
from vitrestore.ops.downscale import downscale
from vitrestore.task import Batch, CannotAdapt

CANDIDATES = ("matlab_bicubic", "cv2_area", "cv2_linear", "cv2_cubic", "pil_lanczos", "pil_bilinear")
PATCH = 24  # internal pairs' input side (px of D(x)); the target is scale x that
MIN_PATCH = 12  # a smaller copy under this on a side teaches nothing
PAIRS = 3  # internal pairs per step
PULLS = 1  # pull pairs per step
PULL_WEIGHT = 1.0  # per-pixel weight of a pull pair relative to an internal pair
HOLD_OUT = 0.25  # share of each smaller copy's rows kept for the check
SCORE_PIXELS = 250_000  # the check's share of the smaller copies' pixels (bounded time)
BORDER = 2  # px of x left out of the downscaler comparison (kernels reach past the border)
BACK_PROJECT = 3  # back-projection rounds making the pull's targets consistent with x (0: the raw outputs)


@dataclass
class Prepared:
    hr: list[torch.Tensor]  # samples cut to a multiple of the scale (1, 3, sh, sw)
    lr: list[torch.Tensor]  # their smaller copies by the picked downscaler, 8-bit (1, 3, h, w)
    base: list[torch.Tensor]  # the samples as given (1, 3, H, W)
    out: list[torch.Tensor]  # the base model's outputs on them (1, 3, sH, sW)
    scale: int
    patch: int
    train_rows: list[int]  # rows of lr[k] a training patch may use (the rest is the check's)
    downscaler: str
    errors: dict[str, float] = field(default_factory=dict)  # candidate -> consistency error (x 255)


def pick_downscaler(images: list[torch.Tensor], outputs: list[torch.Tensor],
                    candidates: tuple[str, ...] = CANDIDATES) -> tuple[str, dict[str, float]]:
    """The candidate under which the base outputs shrink back closest to the inputs, and every
    candidate's error (mean absolute difference, 8-bit levels, borders left out)."""
    errors = {}
    for name in candidates:
        total, n = 0.0, 0
        for x, y in zip(images, outputs):
            small = downscale(y.double(), tuple(x.shape[-2:]), name).float().clamp(0, 1)
            b = BORDER if min(x.shape[-2:]) > 4 * BORDER else 0
            d = (small - x)[..., b:x.shape[-2] - b, b:x.shape[-1] - b].abs()
            total, n = total + float(d.sum()), n + d.numel()
        errors[name] = 255 * total / max(1, n)
    return min(errors, key=errors.get), errors


def back_project(y: torch.Tensor, x: torch.Tensor, name: str, rounds: int | None = None) -> torch.Tensor:
    """y (a base output of x) moved towards outputs that shrink back to x under `name`:
    y += bicubic-enlarged (x - D(y)), `rounds` times (iterative back-projection)."""
    from vitrestore.ops.resize import imresize

    z = y.double()
    for _ in range(BACK_PROJECT if rounds is None else rounds):
        z = z + imresize(x.double() - downscale(z, tuple(x.shape[-2:]), name), size=tuple(z.shape[-2:]))
    return z.float().clamp(0, 1)


def prepare(task, samples: list, base) -> Prepared:
    scale = task.scale
    kept = [s for s in samples if min(s.image.shape[-2:]) // scale >= MIN_PATCH]
    if not kept:
        side = min(min(s.image.shape[-2:]) for s in samples) if samples else 0
        raise CannotAdapt(f"the images are too small to make a smaller copy to learn from "
                          f"(the largest is {side} px on its short side; x{scale} needs {MIN_PATCH * scale})")
    images = [s.image for s in kept]
    outs = [base(s.image, **s.request).float() for s in kept]
    name, errors = pick_downscaler(images, outs)
    outs = [back_project(y, x, name) for y, x in zip(outs, images)]
    hr, lr, rows = [], [], []
    for x in images:
        h, w = x.shape[-2:]
        x = x[..., : h - h % scale, : w - w % scale]
        small = quantize(downscale(x.double(), (x.shape[-2] // scale, x.shape[-1] // scale), name)).float()
        hr.append(x.contiguous())
        lr.append(small)
        rows.append(small.shape[-2] - int(small.shape[-2] * HOLD_OUT) if small.shape[-2] >= 2 * MIN_PATCH
                    else small.shape[-2])  # too few rows to hold any out: the check sees trained rows too
    patch = min(PATCH, min(min(small.shape[-1], r) for small, r in zip(lr, rows)))
    return Prepared(hr, lr, images, outs, scale, patch, rows, name, errors)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    if k & 4:
        x = x.transpose(-2, -1)
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    return x


def _internal(p: Prepared, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(torch.randint(len(p.lr), (1,), generator=gen))
    small, s, q = p.lr[k], p.scale, p.patch
    i = int(torch.randint(0, p.train_rows[k] - q + 1, (1,), generator=gen))
    j = int(torch.randint(0, small.shape[-1] - q + 1, (1,), generator=gen))
    t = int(torch.randint(8, (1,), generator=gen))
    return (_dihedral(small[..., i:i + q, j:j + q], t),
            _dihedral(p.hr[k][..., s * i:s * (i + q), s * j:s * (j + q)], t))


def _pull(p: Prepared, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = int(torch.randint(len(p.base), (1,), generator=gen))
    x, s, q = p.base[k], p.scale, p.patch
    i = int(torch.randint(0, x.shape[-2] - q + 1, (1,), generator=gen))
    j = int(torch.randint(0, x.shape[-1] - q + 1, (1,), generator=gen))
    return x[..., i:i + q, j:j + q], p.out[k][..., s * i:s * (i + q), s * j:s * (j + q)]


def batch(task, p: Prepared, gen: torch.Generator, pairs: int = PAIRS, pulls: int = PULLS,
          pull_weight: float = PULL_WEIGHT) -> Batch:
    drawn = [_internal(p, gen) for _ in range(pairs)] + [_pull(p, gen) for _ in range(pulls)]
    inputs = torch.cat([a for a, _ in drawn])
    targets = torch.cat([b for _, b in drawn])
    weight = None
    if pulls and pull_weight != 1.0:
        weight = torch.tensor([1.0] * pairs + [pull_weight] * pulls).view(-1, 1, 1, 1)
    return Batch(input=inputs, target=targets, cond=task.condition(inputs), loss_weight=weight)


def score(task, p: Prepared, net) -> float:
    """Mean L1 of net on the held-out rows of the internal pairs (D(x) -> x), up to SCORE_PIXELS
    of them: lower = a better upscaler of images made like these."""
    total, n, pixels, s = 0.0, 0, 0, p.scale
    for small, x, r in zip(p.lr, p.hr, p.train_rows):
        if pixels >= SCORE_PIXELS:
            break
        top = r if r < small.shape[-2] else 0  # the whole image is seen, the held-out rows scored
        pixels += small.shape[-2] * small.shape[-1]
        total += float((net(small, task.condition(small)) - x)[..., s * top:, :].abs().mean())
        n += 1
    return total / n


def trains(name: str) -> bool:
    return True
