"""Denoising: blind (or told the Gaussian level, `--sigma`) removal of the noise real photo files
carry. Training draws, per image, one noise kind:

    gaussian     white Gaussian, sigma in [sigma_min, sigma_max] (the only kind whose level may
                 be given as a condition)
    poisson      signal-dependent shot + read noise on the sRGB values
    camera       processed-camera noise (vitrestore/ops/camera.py): sensor noise on a random
                 camera's raw mosaic, demosaiced, colour-matrixed, gamma and tone mapped,
                 sometimes made at a smaller size and enlarged
    correlated   Gaussian noise correlated across channels and in space (coarse grain)

then, for images whose level is not given, JPEG (`jpeg_prob`) and sometimes a second round of
noise and JPEG (`twice_prob`, as photos re-saved by apps); and always, last, the 8-bit file
(clip and round, `quantize_bits`). A noisy photo is a file: nothing is trained on values a file
cannot hold, except an optional share of plain Gaussian images (`paper_prob`, 0 by default) left
as unclipped floats, so that one model also holds the papers' protocol.

Conditioning channels (B, 2, H, W):
    0: where the level is known, the noise level / SIGMA_SCALE (0-255 scale), else 0:
         level_map "constant": sigma everywhere (the shipped model's map)
         level_map "clipped":  per pixel, the std that noise of level sigma keeps in [0, 1]
                               around the noisy file's 5x5 mean (vitrestore/ops/clipped.py,
                               channels averaged): sigma lowered where the noise met black or
                               white, so that the network can tell the clipped dark and
                               saturated parts from the rest
    1: 1 where the level is known, else 0 (blind)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vitrestore.config import ConfigError, check_options
from vitrestore.fields import among, bounded
from vitrestore.ops.camera import CameraNoise
from vitrestore.ops.clipped import clipped_std, local_mean
from vitrestore.ops.degrade import (JPEG, CorrelatedNoise, GaussianNoise, PoissonGaussianNoise, Quantize, _uniform,
                                    select)
from vitrestore.task import Batch, Task

from . import denoise_adapt
from .denoise_command import COMMAND

SIGMA_SCALE = 50.0  # sigma (0-255 scale) that maps to 1.0 in the condition map


@dataclass(frozen=True)
class DenoiseOptions:
    sigma_min: float = bounded(0.0, 0, 255)
    sigma_max: float = bounded(50.0, 0, 255)
    # share of the images whose Gaussian level is redrawn in [sigma_min, low_sigma_max] (light
    # noise: what most photos carry, and where CBM3D is hardest to beat)
    low_sigma_prob: float = bounded(0.0, 0, 1)
    low_sigma_max: float = bounded(20.0, 0, 255)
    # shares of the noise kinds (the rest of the images get white Gaussian noise)
    poisson_prob: float = bounded(0.25, 0, 1)
    camera_prob: float = bounded(0.0, 0, 1)
    correlated_prob: float = bounded(0.0, 0, 1)
    # strongest camera shot noise (about 35/255 std in sRGB); at least the camera noise's weakest shot noise
    camera_shot_max: float = bounded(1.2e-2, 1e-4, 1)
    correlated_sigma_max: float = bounded(40.0, 2, 255)  # at least the correlated noise's weakest level
    jpeg_prob: float = bounded(0.05, 0, 1)  # share of the blind images JPEG-compressed after the noise
    jpeg_quality_min: int = bounded(85, 0, 100)
    jpeg_quality_max: int = bounded(98, 0, 100)
    twice_prob: float = bounded(0.0, 0, 1)  # share of the blind images given a second round: mild noise, then JPEG
    known_sigma_prob: float = bounded(0.5, 0, 1)  # share of Gaussian-noise images whose level is given as a condition
    # the noisy file's bit depth (8 or 16); 0 = float noise, never clipped (paper protocol)
    quantize_bits: int = among(8, (0, 8, 16))
    # share of the Gaussian images (no JPEG) kept as unclipped floats (paper protocol)
    paper_prob: float = bounded(0.0, 0, 1)
    val_sigma: float = bounded(25.0, 0, 255)  # validation: Gaussian noise at this level, blind, as a file
    # the known level's map: "constant" sigma, or "clipped" (the std per pixel)
    level_map: str = among("constant", ("constant", "clipped"))


class Denoise(Task):
    name = COMMAND.task
    Options = DenoiseOptions
    output_suffix = "denoised"
    Request = COMMAND.request
    contract = ("cond (B, 2, H, W): channel 0 = sigma / 50 (sigma on the 0-255 scale) where the Gaussian noise "
                "level is known, else 0 (with task_options.level_map \"clipped\": per pixel, the std that noise keeps "
                "in [0, 1] on the noisy image's 5x5 mean, channels averaged, / 50); channel 1 = 1 where it is "
                "known, else 0 (blind: both 0). The CLI's "
                "default averages the image and its horizontal mirror (--ensemble 2).")

    def __init__(self, options: Any = None, source: str = "<options>"):
        super().__init__(options, source)
        o: DenoiseOptions = self.options
        check_options(o, source)
        shares = o.poisson_prob + o.camera_prob + o.correlated_prob
        if shares > 1:  # named: the first share that takes the sum over 1
            key = "poisson_prob" if o.poisson_prob > 1 else "camera_prob" if o.poisson_prob + o.camera_prob > 1 \
                else "correlated_prob"
            raise ConfigError(f"{source}: task_options.{key}: poisson_prob + camera_prob + correlated_prob "
                              f"are shares of the images and must not exceed 1, got {shares:g}")
        if o.low_sigma_prob > 0 and not o.sigma_min <= o.low_sigma_max <= o.sigma_max:
            raise ConfigError(f"{source}: task_options.low_sigma_max: must be between task_options.sigma_min and "
                              f"task_options.sigma_max ({o.sigma_min:g} and {o.sigma_max:g}) when low_sigma_prob "
                              f"is above 0, got {o.low_sigma_max:g}")

    @property
    def cond_channels(self) -> int:
        return 2

    # --adapt (tasks/denoise_adapt.py)
    adapt_objective = "noise re-synthesis: the photos' own noise, re-levelled, on the base model's outputs"
    adapt_lr = 1e-4  # CC15: +0.26 / +0.54 / +0.88 dB per camera; 5e-5: +0.21 / +0.43 / +0.82; 2e-4: +0.27 / +0.60 / +0.81
    adapt_with = denoise_adapt

    def _file(self, x: torch.Tensor) -> torch.Tensor:
        bits = self.options.quantize_bits
        return Quantize(bits).apply(x) if bits else x

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        o: DenoiseOptions = self.options
        b, shape = clean.shape[0], tuple(clean.shape)
        gauss = GaussianNoise(o.sigma_min, o.sigma_max)
        gp = gauss.sample(gen, shape)
        if o.low_sigma_prob > 0:  # drawn only when asked, so that seeds without it replay as before
            low = _uniform(gen, b, o.sigma_min, o.low_sigma_max)  # (B,) 0-255 scale
            gp["sigma"] = torch.where(select(gen, b, o.low_sigma_prob), low / 255.0, gp["sigma"])
        pg = PoissonGaussianNoise()
        pp = pg.sample(gen, shape)
        kind = torch.rand(b, generator=gen)  # (B,) which noise: cumulative shares
        cuts = torch.tensor([o.poisson_prob, o.camera_prob, o.correlated_prob]).cumsum(0)
        use_pg, use_cam, use_cor = kind < cuts[0], (kind >= cuts[0]) & (kind < cuts[1]), \
            (kind >= cuts[1]) & (kind < cuts[2])
        noisy = torch.where(use_pg.view(-1, 1, 1, 1), pg.apply(clean, pp), gauss.apply(clean, gp))
        if o.camera_prob > 0 and clean.shape[1] == 3:
            cam = CameraNoise(shot_max=o.camera_shot_max)
            cp = cam.sample(gen, shape)
            noisy = torch.where(use_cam.view(-1, 1, 1, 1), cam.apply(clean, cp), noisy)
        if o.correlated_prob > 0:
            cor = CorrelatedNoise(sigma_max=o.correlated_sigma_max)
            rp = cor.sample(gen, shape)
            noisy = torch.where(use_cor.view(-1, 1, 1, 1), cor.apply(clean, rp), noisy)
        gaussian = ~(use_pg | use_cam | use_cor)  # (B,) white Gaussian images
        known = select(gen, b, o.known_sigma_prob) & gaussian
        jpeg = JPEG(o.jpeg_quality_min, o.jpeg_quality_max)
        jpeged = select(gen, b, o.jpeg_prob) & ~known
        plain = gaussian & ~jpeged  # (B,) Gaussian images that no JPEG or second round touches
        noisy = self._jpeg(noisy, jpeg, jpeg.sample(gen, shape), jpeged)
        if o.twice_prob > 0:
            again = select(gen, b, o.twice_prob) & ~known
            plain &= ~again
            mild = CorrelatedNoise(1.0, 12.0)
            mp = mild.sample(gen, shape)
            noisy = torch.where(again.view(-1, 1, 1, 1), mild.apply(noisy.clamp(0, 1), mp), noisy)
            noisy = self._jpeg(noisy, jpeg, jpeg.sample(gen, shape), again)
        filed = self._file(noisy)
        paper = torch.zeros(b, dtype=torch.bool)
        if o.paper_prob > 0:  # drawn last, so that seeds without it replay as before
            paper = select(gen, b, o.paper_prob) & plain
            filed = torch.where(paper.view(-1, 1, 1, 1), noisy, filed)
        # a float (paper) image was never clipped: its map is the plain sigma
        cond = self._cond_map(filed, gp["sigma"] * 255.0, known, clipped=~paper if self.clipped_map else None)
        return Batch(input=filed, target=clean, cond=cond)

    @staticmethod
    def _jpeg(x: torch.Tensor, jpeg: JPEG, params: dict, on: torch.Tensor) -> torch.Tensor:
        """x with the images where `on` is set JPEG-compressed (the rest untouched)."""
        if not on.any():
            return x
        idx = on.nonzero().flatten()
        x = x.clone()
        x[idx] = jpeg.apply(x[idx], {"quality": params["quality"][idx]})
        return x

    def validation_batch(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        s = self.options.val_sigma
        p = GaussianNoise(s, s).sample(gen, clean.shape)
        noisy = self._file(GaussianNoise(s, s).apply(clean, p))
        return Batch(input=noisy, target=clean, cond=self.condition(noisy))

    @property
    def clipped_map(self) -> bool:
        return self.options.level_map == "clipped"

    @staticmethod
    def _cond_map(noisy: torch.Tensor, sigma: torch.Tensor, known: torch.Tensor,
                  clipped: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2, H, W) from the noisy images (B, C, H, W), their sigma (B,) on the 0-255 scale and
        whether it is known (B,); `clipped` (B,) bool: the images whose map is the clipped std."""
        b, _, h, w = noisy.shape
        k = known.to(noisy.dtype).view(b, 1, 1, 1)
        level = (sigma.to(noisy.dtype).view(b, 1, 1, 1) / SIGMA_SCALE).expand(b, 1, h, w)  # (B, 1, H, W)
        if clipped is not None and bool((clipped & known).any()):
            # the std each pixel's noise keeps in the file, channels averaged: (B, 1, H, W)
            seen = clipped_std(local_mean(noisy.clamp(0, 1)), sigma.view(b, 1, 1, 1) / 255.0).mean(1, keepdim=True)
            level = torch.where(clipped.view(b, 1, 1, 1), seen.to(noisy.dtype) * (255.0 / SIGMA_SCALE), level)
        return torch.cat([level * k, k.expand(b, 1, h, w)], 1)

    def condition(self, image: torch.Tensor, sigma: float | None = None, **request: Any) -> torch.Tensor:
        b = image.shape[0]
        if sigma is None:
            return self._cond_map(image, torch.zeros(b), torch.zeros(b, dtype=torch.bool))
        known = torch.ones(b, dtype=torch.bool)
        return self._cond_map(image, torch.full((b,), float(sigma)), known, clipped=known if self.clipped_map else None)
