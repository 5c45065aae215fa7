"""Seeded degradation ops. Each op draws its random parameters in `sample` (from a
torch.Generator) and applies them in `apply`, so a degradation can be replayed exactly:

    params = op.sample(gen, x.shape)
    y = op.apply(x, params)          # deterministic given params

Images are float tensors (B, C, H, W) in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..fields import among, bounded


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive white Gaussian noise, sigma drawn per image from [sigma_min, sigma_max] (0-255 scale)."""

    sigma_min: float = bounded(0.0, 0, 255)
    sigma_max: float = bounded(50.0, 0, 255)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        sigma = _uniform(gen, shape[0], self.sigma_min, self.sigma_max) / 255.0  # (B,)
        return {"sigma": sigma, "noise": torch.randn(shape, generator=gen)}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        return x + p["sigma"].to(x).view(-1, 1, 1, 1) * p["noise"].to(x)


@dataclass(frozen=True)
class PoissonGaussianNoise:
    """Signal-dependent sensor noise: y = x + sqrt(a * x + b^2) * n, n ~ N(0, 1).

    `a` (shot-noise gain) and `b` (read noise, 0-255 scale) are drawn per image.
    """

    gain_max: float = bounded(0.02, 0, 1)
    read_max: float = bounded(25.0, 0, 255)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        b = shape[0]
        gain = _uniform(gen, b, 0.0, 1.0) ** 2 * self.gain_max
        read = _uniform(gen, b, 0.0, self.read_max) / 255.0
        return {"gain": gain, "read": read, "noise": torch.randn(shape, generator=gen)}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        gain = p["gain"].to(x).view(-1, 1, 1, 1)
        read = p["read"].to(x).view(-1, 1, 1, 1)
        std = torch.sqrt(gain * x.clamp(0, 1) + read**2)
        return x + std * p["noise"].to(x)


@dataclass(frozen=True)
class JPEG:
    """JPEG compression at a quality drawn per image from [quality_min, quality_max] (OpenCV codec)."""

    quality_min: int = bounded(70, 0, 100)
    quality_max: int = bounded(95, 0, 100)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        q = torch.randint(self.quality_min, self.quality_max + 1, (shape[0],), generator=gen)
        return {"quality": q}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        out = []
        for img, q in zip(x, p["quality"].tolist()):
            arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()  # (H, W, C) RGB
            if arr.shape[2] == 3:
                arr = arr[:, :, ::-1]
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr), [cv2.IMWRITE_JPEG_QUALITY, int(q)])
            dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            if dec.ndim == 2:
                dec = dec[:, :, None]
            elif dec.shape[2] == 3:
                dec = dec[:, :, ::-1]
            out.append(torch.from_numpy(np.ascontiguousarray(dec)).permute(2, 0, 1).float() / 255.0)
        return torch.stack(out).to(x)


def pick(gen: torch.Generator, options: tuple):
    """One of `options`, uniformly."""
    return options[int(torch.randint(0, len(options), (1,), generator=gen))]


def select(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    """Boolean (n,) mask: which images of a batch an op applies to, with probability p."""
    return torch.rand(n, generator=gen) < p


@dataclass(frozen=True)
class ColorJitter:
    """Random brightness, contrast and saturation factors per image (faded or mis-exposed photos)."""

    brightness: float = bounded(0.2, 0, 1)  # factor drawn from [1 - b, 1 + b]
    contrast: float = bounded(0.2, 0, 1)
    saturation: float = bounded(0.3, 0, 1)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        b = shape[0]
        return {name: _uniform(gen, b, 1 - amount, 1 + amount)
                for name, amount in (("brightness", self.brightness), ("contrast", self.contrast),
                                     ("saturation", self.saturation))}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        def per_image(v):
            return v.to(x).view(-1, 1, 1, 1)

        x = x * per_image(p["brightness"])
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + (x - mean) * per_image(p["contrast"])
        if x.shape[1] == 3:
            luma = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])
            x = luma + (x - luma) * per_image(p["saturation"])
        return x.clamp(0, 1)


@dataclass(frozen=True)
class Holes:
    """Rectangular holes filled with `fill` (0-1); the pipeline reports them as a mask."""

    count_min: int = bounded(1, 0, 256)
    count_max: int = bounded(4, 1, 256)
    size_min: float = bounded(0.05, 0, 1)  # side as a share of the image side
    size_max: float = bounded(0.3, 0, 1)
    fill: float = bounded(0.0, 0, 1)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        b, h, w = shape[0], shape[-2], shape[-1]
        n = self.count_max
        active = torch.arange(n).view(1, n) < torch.randint(self.count_min, n + 1, (b, 1), generator=gen)
        bh = (_uniform(gen, b * n, self.size_min, self.size_max) * h).view(b, n).clamp(min=1)
        bw = (_uniform(gen, b * n, self.size_min, self.size_max) * w).view(b, n).clamp(min=1)
        top = torch.rand(b, n, generator=gen) * (h - bh)
        left = torch.rand(b, n, generator=gen) * (w - bw)
        boxes = torch.stack([top, left, top + bh, left + bw], -1).round().long()  # (B, N, 4) y0 x0 y1 x1
        return {"boxes": boxes, "active": active, "hw": (h, w)}

    def mask(self, p: dict) -> torch.Tensor:
        """(B, 1, H, W) 1 inside the holes."""
        h, w = p["hw"]
        ys, xs = torch.arange(h).view(1, 1, h, 1), torch.arange(w).view(1, 1, 1, w)
        bx = p["boxes"].unsqueeze(-1).unsqueeze(-1)  # (B, N, 4, 1, 1)
        inside = ((ys >= bx[:, :, 0]) & (ys < bx[:, :, 2]) & (xs >= bx[:, :, 1]) & (xs < bx[:, :, 3])
                  & p["active"].view(*p["active"].shape, 1, 1))  # (B, N, H, W)
        return inside.any(1, keepdim=True).float()

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        m = self.mask(p).to(x)
        return x * (1 - m) + self.fill * m


@dataclass(frozen=True)
class Quantize:
    """The last step of every degradation: clip to [0, 1] and round to `bits`-bit levels, as a
    saved file is (8-bit PNG/JPEG; 16 for 16-bit PNG/TIFF). Nothing random: `sample` draws nothing."""

    bits: int = among(8, (8, 16))

    def __post_init__(self):
        if self.bits not in (8, 16):
            raise ValueError(f"quantize bits must be 8 or 16, got {self.bits}")

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        return {}

    def apply(self, x: torch.Tensor, p: dict | None = None) -> torch.Tensor:
        peak = float(2**self.bits - 1)
        return (x.clamp(0, 1) * peak).round() / peak


def quantize(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """`Quantize(bits).apply(x)`: what a degraded image is once it is a file."""
    return Quantize(bits).apply(x)


def _normalise_std(field: torch.Tensor) -> torch.Tensor:
    """A noise field (B, C, H, W) scaled to unit standard deviation per image."""
    return field / field.flatten(1).std(1).clamp(min=1e-8).view(-1, 1, 1, 1)


@dataclass(frozen=True)
class CorrelatedNoise:
    """Gaussian noise correlated across channels and, optionally, in space: what demosaicing,
    colour matrices and resizing leave of a sensor's white noise (BSRGAN / SCUNet practice).

    Per image: a random 3x3 colour mixing L (noise = L n, covariance L L^T scaled so that the
    mean channel std is sigma), with probability `gray_prob` luma-only noise (the same on every
    channel); a grain: the field is drawn at 1/g of the size, g in [1, grain_max], and enlarged
    bicubically, then rescaled to unit variance (g = 1: white)."""

    sigma_min: float = bounded(2.0, 0, 255)
    sigma_max: float = bounded(40.0, 0, 255)  # 0-255 scale
    gray_prob: float = bounded(0.2, 0, 1)
    grain_max: float = bounded(3.0, 1, 64)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        b, c = shape[0], shape[1]
        sigma = _uniform(gen, b, self.sigma_min, self.sigma_max) / 255.0  # (B,)
        mix = torch.randn(b, c, c, generator=gen) * 0.6 + torch.eye(c)  # (B, C, C), near identity
        gray = select(gen, b, self.gray_prob)
        grain = _uniform(gen, 1, 1.0, self.grain_max)  # one grain per batch (one field size)
        h, w = shape[-2], shape[-1]
        gh, gw = max(2, round(h / float(grain))), max(2, round(w / float(grain)))
        return {"sigma": sigma, "mix": mix, "gray": gray, "field": torch.randn(b, c, gh, gw, generator=gen)}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        b, c, h, w = x.shape
        field = p["field"].to(x)
        if field.shape[-2:] != (h, w):
            field = torch.nn.functional.interpolate(field, size=(h, w), mode="bicubic", align_corners=False)
        field = _normalise_std(field)
        mix = p["mix"].to(x)
        mix = mix / mix.pow(2).sum(2).mean(1).sqrt().view(-1, 1, 1)  # mean channel variance 1
        noise = torch.einsum("bij,bjhw->bihw", mix, field)  # (B, C, H, W)
        noise = torch.where(p["gray"].to(x.device).view(-1, 1, 1, 1), field[:, :1].expand_as(noise), noise)
        return x + p["sigma"].to(x).view(-1, 1, 1, 1) * noise
