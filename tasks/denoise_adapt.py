"""`denoise --adapt`: teach the denoiser this run's own noise, with no clean image.

Objective (noise re-synthesis, measured against Neighbor2Neighbor, Recorrupted-to-Recorrupted
and plain re-synthesis on CC15's real camera noise: benchmarks/trials/adapt_denoise_cc15.py):

    1. the base model's outputs x^ on the pooled samples, and their residuals r = y - x^
    2. the photos' noise-level function var = a + b * x^ per channel, fitted on flat pixels
       (ops/selfsup.py): how the noise grows with brightness
    3. the gain: the photos' noise over the residuals' at full resolution (ops/selfsup.py
       noise_std): the residuals hold only the noise the base model removed, and a camera's
       correlated noise it partly keeps (CC15: 1.25-1.7; white Gaussian files: 1.02)
    4. a pair per step: a 96 px crop of x^ as the target; as input, x^ plus a noise sample: the
       residual at the flattest of 8 random places of the samples, divided by its local noise
       level and multiplied by the crop's and the gain (the camera's spatial and colour
       correlation kept, its level moved to the crop's brightness), mirrored half the time
    5. only the full-resolution path is fine-tuned (nn/generator.py FULL_RESOLUTION): the fine
       grain is what a camera changes; the coarse levels stay as trained

The check (`score`): the Neighbor2Neighbor loss of the network on fixed sub-images of the
samples, which ranks denoisers of white noise without clean images; the adapted copy must lower
it. None where the gain shows correlated noise (see `score`).

CC15, 1,250 steps (120 s), one folder per camera (benchmarks/bench_adapt_denoise.py): shipped
36.58 / 37.21 / 37.02 dB (5D Mark III / D600 / D800), adapted 36.84 / 37.75 / 37.90 (lr 1e-4;
36.79 / 37.64 / 37.84 at 5e-5); at 5e-5 with the gain fixed at 1.0, 1.25 and 1.5: 36.08 / 37.52 /
37.60, 36.41 / 37.65 / 37.81, 36.66 / 37.65 / 37.92 (and 0.8: 35.74 / 37.34 / 37.36).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vitrestore.nn.generator import is_full_resolution
from vitrestore.ops.selfsup import fit_noise_level, gradient_energy, neighbor_subimages, noise_std
from vitrestore.task import Batch, CannotAdapt

CROP = 96  # training crop (px, even)
CANDIDATES = 8  # places tried for the flattest residual
MIN_NOISE = 1.0 / 255  # below this (ops/selfsup.py noise_std) there is nothing to adapt to
SCORE_PIXELS = 1_000_000  # the check's share of the samples (bounded time)
NOISE_GAIN = 1.0  # trials: a factor on the measured gain below
MAX_GAIN = 2.0  # the synthetic noise at most this many times the residuals' level
WHITE_GAIN = 1.2  # above this gain the noise is taken as correlated, where the check is biased


@dataclass
class Prepared:
    noisy: list[torch.Tensor]  # (1, 3, h, w) each
    base: list[torch.Tensor]  # the base model's outputs, the same shapes
    requests: list[dict]
    a: torch.Tensor  # (1, 3, 1, 1): the noise-level function's floor (variance)
    b: torch.Tensor  # (1, 3, 1, 1): its slope with brightness
    crop: int
    gain: float  # the synthetic noise's level over the residuals' (the noise the base output keeps)

    def std(self, x: torch.Tensor) -> torch.Tensor:
        """The fitted noise std at the pixel values of x (B, 3, H, W)."""
        return (self.a + self.b * x.clamp(0, 1)).sqrt()


def prepare(task, samples: list, base) -> Prepared:
    noisy = [s.image for s in samples]
    side = min(min(x.shape[-2:]) for x in noisy)
    crop = min(CROP, side // 2 * 2)
    if crop < 32:
        raise CannotAdapt(f"too few pixels to adapt on (the smallest image is {side} px on a side)")
    level = sum(noise_std(x) for x in noisy) / len(noisy)
    if level < MIN_NOISE:
        raise CannotAdapt(f"the images show almost no noise (about {level * 255:.2f}/255): nothing to adapt to")
    outs = [base(s.image, **s.request) for s in samples]
    residuals = [y - x for y, x in zip(noisy, outs)]
    a, b = fit_noise_level(outs, residuals)
    # the residuals hold only the noise the base model removed: where it keeps some (a camera's
    # correlated, demosaiced noise) they under-state the noise, by the ratio of the photos' noise
    # to theirs at full resolution (CC15: 1.25-1.7; white Gaussian files: 1.02)
    gain = sum(noise_std(y, 1) for y in noisy) / max(1e-8, sum(noise_std(r, 1) for r in residuals))
    gain = min(MAX_GAIN, max(1.0, gain))
    return Prepared(noisy, outs, [s.request for s in samples], a.view(1, 3, 1, 1), b.view(1, 3, 1, 1), crop,
                    gain)


def _place(p: Prepared, gen: torch.Generator, even: bool = False) -> tuple[int, int, int]:
    """A random sample k and the corner (i, j) of a crop in it."""
    k = int(torch.randint(len(p.noisy), (1,), generator=gen))
    _, _, h, w = p.noisy[k].shape
    step = 2 if even else 1
    i = int(torch.randint(0, (h - p.crop) // step + 1, (1,), generator=gen)) * step
    j = int(torch.randint(0, (w - p.crop) // step + 1, (1,), generator=gen)) * step
    return k, i, j


def _flattest_noise(p: Prepared, gen: torch.Generator) -> torch.Tensor:
    """A unit-level noise sample (1, 3, crop, crop): the residual at the flattest of CANDIDATES
    places, divided by the noise level there."""
    best = None
    for _ in range(CANDIDATES):
        k, i, j = _place(p, gen)
        base = p.base[k][..., i:i + p.crop, j:j + p.crop]
        energy = float(gradient_energy(base).mean())
        if best is None or energy < best[0]:
            best = (energy, k, i, j)
    _, k, i, j = best
    base = p.base[k][..., i:i + p.crop, j:j + p.crop]
    return (p.noisy[k][..., i:i + p.crop, j:j + p.crop] - base) / p.std(base)


def batch(task, p: Prepared, gen: torch.Generator) -> Batch:
    k, i, j = _place(p, gen, even=True)
    target = p.base[k][..., i:i + p.crop, j:j + p.crop]
    noise = _flattest_noise(p, gen)
    if float(torch.rand(1, generator=gen)) < 0.5:
        noise = noise.flip(-1)
    noisy = target + noise * p.std(target) * (p.gain * NOISE_GAIN)
    return Batch(input=noisy, target=target, cond=task.condition(noisy, **_plain(p.requests[k])))


def _plain(request: dict) -> dict:
    return {k: v for k, v in request.items() if not torch.is_tensor(v)}


def score(task, p: Prepared, net) -> float | None:
    """Neighbor2Neighbor loss of net on fixed sub-images (seed 1) of the samples, up to
    SCORE_PIXELS of them: lower = a better denoiser of this noise. None (no check) where the
    noise is correlated (gain above WHITE_GAIN): neighbours then share noise, and the loss
    favours passing it through (CC15: it refused copies 0.3-0.8 dB better)."""
    if p.gain > WHITE_GAIN:
        return None
    gen, total, n, pixels = torch.Generator().manual_seed(1), 0.0, 0, 0
    for y, request in zip(p.noisy, p.requests):
        if pixels >= SCORE_PIXELS:
            break
        pixels += y.shape[-2] * y.shape[-1]
        first, second = neighbor_subimages(y, gen)
        total += float(F.mse_loss(net(first, task.condition(first, **_plain(request))), second))
        n += 1
    return total / n


def trains(name: str) -> bool:
    return is_full_resolution(name)
