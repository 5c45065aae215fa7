"""Super-resolution (`vitrestore upscale`): x2 / x4, from the low-resolution input's own tokens
(the generator's head upsamples with pixel shuffle; the input is never bicubic-enlarged first).

Two degradation families, both seeded and replayable from one torch.Generator:

classic   a clean downscale by a downscaler drawn per image from `downscalers` (default: all of
          vitrestore/ops/downscale.py: MATLAB bicubic, Pillow bicubic / Lanczos / bilinear / box,
          OpenCV area / linear / cubic, with and without antialiasing), quantised to 8 bits:
          a small image as any tool writes it. `downscalers: [matlab_bicubic]` is the papers'
          protocol (what Set5/Set14 numbers are measured with). For PSNR-oriented models.
real      a second-order pipeline in the spirit of Real-ESRGAN / BSRGAN, run batched in torch:
              [blur (isotropic or anisotropic) -> random resize -> Gaussian, Poisson or
               processed-camera noise -> JPEG]
              then, with probability `second_order_prob`, the same again with milder strengths,
              then a resize to the final low resolution (random interpolation) and a last JPEG,
              the two in random order. For the GAN model that handles real photos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from vitrestore.config import ConfigError, check_options
from vitrestore.fields import among, bounded
from vitrestore.ops.blur import GaussianBlur
from vitrestore.ops.camera import CameraNoise
from vitrestore.ops.degrade import JPEG, GaussianNoise, PoissonGaussianNoise, pick, quantize, select
from vitrestore.ops.downscale import DOWNSCALERS, Downscale
from vitrestore.task import Batch, Task

from . import super_resolution_adapt
from .super_resolution_command import COMMAND

DEGRADATIONS = ("classic", "real")
_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class UpscaleOptions:
    scale: int = among(4, (2, 3, 4, 8))
    degradation: str = among("classic", DEGRADATIONS)
    downscalers: tuple[str, ...] = tuple(DOWNSCALERS)  # classic: drawn per image
    # real-world pipeline (first order; the second order uses milder ranges)
    blur_sigma_max: float = bounded(3.0, 0, 100)
    resize_min: float = bounded(0.15, 0.01, 4)
    resize_max: float = bounded(1.5, 0.01, 4)
    noise_sigma_max: float = bounded(25.0, 0, 255)
    poisson_prob: float = bounded(0.4, 0, 1)
    # also the camera noise's strongest shot noise: at least its weakest
    poisson_gain_max: float = bounded(0.02, 1e-4, 1)
    jpeg_quality_min: int = bounded(30, 0, 100)
    jpeg_quality_max: int = bounded(95, 0, 100)
    second_order_prob: float = bounded(0.8, 0, 1)
    # real: share of the noise that is processed-camera noise (vitrestore/ops/camera.py)
    camera_prob: float = bounded(0.0, 0, 1)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area") if size[0] < x.shape[-2] else \
            F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def real_degradation(clean: torch.Tensor, scale: int, o: UpscaleOptions, gen: torch.Generator) -> torch.Tensor:
    """(B, 3, H, W) clean -> (B, 3, H/scale, W/scale) low-resolution input with real-world damage."""
    b, _, h, w = clean.shape
    x = clean
    for order, strength in ((1, 1.0), (2, 0.5)):
        if order == 2 and not bool(torch.rand(1, generator=gen) < o.second_order_prob):
            break
        blur = GaussianBlur(0.2, max(0.3, o.blur_sigma_max * (0.5 if order == 2 else 1.0)), 0.5, 21)
        x = blur.apply(x, blur.sample(gen, tuple(x.shape)))
        lo, hi = (o.resize_min, o.resize_max) if order == 1 else (0.3, 1.2)
        r = lo + (hi - lo) * float(torch.rand(1, generator=gen))
        size = (max(8, round(x.shape[-2] * r)), max(8, round(x.shape[-1] * r)))
        x = _resize(x, size, pick(gen, _MODES))
        gauss = GaussianNoise(1.0, o.noise_sigma_max * strength)
        pg = PoissonGaussianNoise(o.poisson_gain_max * strength, 2.0)
        gp, pp = gauss.sample(gen, tuple(x.shape)), pg.sample(gen, tuple(x.shape))
        use_pg = select(gen, b, o.poisson_prob).view(-1, 1, 1, 1)
        x = torch.where(use_pg, pg.apply(x, pp), gauss.apply(x, gp))
        if o.camera_prob > 0:
            cam = CameraNoise(shot_max=o.poisson_gain_max * strength)
            cp = cam.sample(gen, tuple(x.shape))
            use_cam = select(gen, b, o.camera_prob).view(-1, 1, 1, 1)
            x = torch.where(use_cam, cam.apply(x.clamp(0, 1), cp), x)
        x = x.clamp(0, 1)
        if order == 1:
            jpeg = JPEG(o.jpeg_quality_min, o.jpeg_quality_max)
            x = jpeg.apply(x, jpeg.sample(gen, tuple(x.shape)))
    final = (h // scale, w // scale)
    jpeg = JPEG(o.jpeg_quality_min, o.jpeg_quality_max)
    jp = jpeg.sample(gen, (b,))
    if bool(torch.rand(1, generator=gen) < 0.5):  # resize, then JPEG
        x = jpeg.apply(_resize(x, final, pick(gen, _MODES)).clamp(0, 1), jp)
    else:  # JPEG, then resize
        x = _resize(jpeg.apply(x.clamp(0, 1), jp), final, pick(gen, _MODES))
    return quantize(x)


class Upscale(Task):
    contract = "no cond; the output is `scale` times the input's size (tiles overlap 32 px, feathered)."
    name = COMMAND.task
    Options = UpscaleOptions
    Request = COMMAND.request

    def __init__(self, options: Any = None, source: str = "<options>"):
        super().__init__(options, source)
        o: UpscaleOptions = self.options
        check_options(o, source)
        try:
            self.downscale = Downscale(o.scale, tuple(o.downscalers))
        except ValueError as exc:
            raise ConfigError(f"{source}: task_options.downscalers: {exc}") from None

    @property
    def scale(self) -> int:
        return self.options.scale

    @property
    def suffix(self) -> str:
        return f"x{self.options.scale}"

    def degrade(self, clean: torch.Tensor, gen: torch.Generator) -> Batch:
        s = self.options.scale
        h, w = clean.shape[-2:]
        clean = clean[..., : h - h % s, : w - w % s]
        if self.options.degradation == "real":
            return Batch(input=real_degradation(clean, s, self.options, gen), target=clean)
        small = self.downscale.apply(clean, self.downscale.sample(gen, tuple(clean.shape)))
        return Batch(input=quantize(small), target=clean)

    def disc_condition(self, batch: Batch) -> torch.Tensor:
        """The discriminator sees the low-resolution input enlarged to the candidate's size."""
        return F.interpolate(batch.input, size=batch.target.shape[-2:], mode="bicubic", align_corners=False)

    def disc_in_channels(self, gcfg) -> int:
        return 2 * gcfg.out_channels

    # --adapt (tasks/super_resolution_adapt.py)
    adapt_objective = "internal pairs: the inputs shrunk again by the downscaler they are consistent with"
    adapt_lr = 5e-5
    adapt_with = super_resolution_adapt
