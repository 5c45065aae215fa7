"""Denoising: Gaussian and Poisson-Gaussian sensor noise (plus optional mild JPEG), blind by
default, or told the noise level as an FFDNet-style conditioning map (`--sigma`).

Conditioning channels (B, 2, H, W):
    0: sigma / SIGMA_SCALE where the level is known, else 0
    1: 1 where the level is known, else 0 (blind)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vitrestore.degrade import JPEG, GaussianNoise, PoissonGaussianNoise, select
from vitrestore.registry import register
from vitrestore.task import Batch, Task

SIGMA_SCALE = 50.0  # sigma (0-255 scale) that maps to 1.0 in the condition map


@dataclass(frozen=True)
class DenoiseOptions:
    sigma_min: float = 0.0
    sigma_max: float = 50.0
    poisson_prob: float = 0.25  # share of images with Poisson-Gaussian instead of Gaussian noise
    jpeg_prob: float = 0.05  # share of images JPEG-compressed after the noise (mild)
    jpeg_quality_min: int = 85
    jpeg_quality_max: int = 98
    known_sigma_prob: float = 0.5  # share of Gaussian-noise images whose level is given as a condition
    val_sigma: float = 25.0  # validation: Gaussian noise at this level, blind


@register
class Denoise(Task):
    name = "denoise"
    Options = DenoiseOptions
    output_suffix = "denoised"
    description = "remove Gaussian / sensor noise (blind, or with --sigma)"

    @property
    def cond_channels(self) -> int:
        return 2

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        o: DenoiseOptions = self.options
        b = clean.shape[0]
        gauss = GaussianNoise(o.sigma_min, o.sigma_max)
        pg = PoissonGaussianNoise()
        gp, pp = gauss.sample(gen, clean.shape), pg.sample(gen, clean.shape)
        use_pg = select(gen, b, o.poisson_prob).view(-1, 1, 1, 1)
        noisy = torch.where(use_pg, pg.apply(clean, pp), gauss.apply(clean, gp))
        jpeg = JPEG(o.jpeg_quality_min, o.jpeg_quality_max)
        jp = jpeg.sample(gen, clean.shape)
        use_jpeg = select(gen, b, o.jpeg_prob)
        if use_jpeg.any():
            idx = use_jpeg.nonzero().flatten()
            noisy[idx] = jpeg.apply(noisy[idx], {"quality": jp["quality"][idx]})
        known = select(gen, b, o.known_sigma_prob) & ~use_pg.view(-1) & ~use_jpeg
        cond = self._cond_map(clean, gp["sigma"] * 255.0, known)
        return Batch(input=noisy, target=clean, cond=cond)

    def validation_batch(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        s = self.options.val_sigma
        p = GaussianNoise(s, s).sample(gen, clean.shape)
        noisy = GaussianNoise(s, s).apply(clean, p)
        return Batch(input=noisy, target=clean, cond=self.condition(noisy))

    @staticmethod
    def _cond_map(like: torch.Tensor, sigma: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        b, _, h, w = like.shape
        k = known.to(like.dtype).view(b, 1, 1, 1)
        level = (sigma.to(like.dtype).view(b, 1, 1, 1) / SIGMA_SCALE) * k
        return torch.cat([level.expand(b, 1, h, w), k.expand(b, 1, h, w)], 1)

    def condition(self, image: torch.Tensor, sigma: float | None = None, **request: Any) -> torch.Tensor:
        b = image.shape[0]
        if sigma is None:
            return self._cond_map(image, torch.zeros(b), torch.zeros(b, dtype=torch.bool))
        if not 0 <= sigma <= 255:
            raise ValueError(f"sigma must be in [0, 255] (0-255 scale), got {sigma}")
        return self._cond_map(image, torch.full((b,), float(sigma)), torch.ones(b, dtype=torch.bool))
