"""Seeded blur and resize degradations (same sample/apply contract as `degrade.py`).

Kernels are drawn per image in `sample` as a (B, k, k) tensor and applied in one batched
convolution (kornia `filter2d`, reflect padding), so the same code runs on CPU or GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..fields import among, bounded
from .degrade import _uniform, pick


def _grid(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(k, k) x and y coordinates centred on the kernel's middle pixel."""
    r = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    return r.view(1, k).expand(k, k), r.view(k, 1).expand(k, k)


def gaussian_kernels(sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) sigmas (pixels) and angles (radians) -> (B, k, k) normalised anisotropic Gaussians."""
    x, y = _grid(k)
    c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    u, v = c * x + s * y, -s * x + c * y  # rotated coordinates, (B, k, k)
    sx, sy = sigma_x.view(-1, 1, 1), sigma_y.view(-1, 1, 1)
    kern = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return kern / kern.sum((1, 2), keepdim=True)


def motion_kernels(length: torch.Tensor, theta: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) lengths (pixels) and angles -> (B, k, k) anti-aliased line kernels (camera shake)."""
    x, y = _grid(k)
    c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    along, across = c * x + s * y, (-s * x + c * y).abs()
    half = (length / 2).view(-1, 1, 1)
    kern = (1 - across).clamp(min=0) * (half + 0.5 - along.abs()).clamp(0, 1)
    return kern / kern.sum((1, 2), keepdim=True).clamp(min=1e-8)


def disk_kernels(radius: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) radii (pixels) -> (B, k, k) anti-aliased disks (out-of-focus blur)."""
    x, y = _grid(k)
    dist = torch.sqrt(x**2 + y**2)
    kern = (radius.view(-1, 1, 1) + 0.5 - dist).clamp(0, 1)
    return kern / kern.sum((1, 2), keepdim=True).clamp(min=1e-8)


def apply_kernels(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of x (B, C, H, W) with its own kernel (B, k, k)."""
    from kornia.filters import filter2d  # noqa: PLC0415  (slow to import: training only)

    return filter2d(x, kernels.to(x), border_type="reflect")


class _KernelBlur:
    """Blurs whose `sample` draws per-image kernels: applying them is the same for all."""

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        return apply_kernels(x, p["kernels"])


@dataclass(frozen=True)
class GaussianBlur(_KernelBlur):
    """Gaussian blur; anisotropic (random second sigma and angle) with probability `aniso_prob`."""

    sigma_min: float = bounded(0.2, 0.01, 100)
    sigma_max: float = bounded(3.0, 0.01, 100)
    aniso_prob: float = bounded(0.5, 0, 1)
    kernel: int = bounded(21, 3, 255)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        b = shape[0]
        sx = _uniform(gen, b, self.sigma_min, self.sigma_max)
        sy = _uniform(gen, b, self.sigma_min, self.sigma_max)
        aniso = torch.rand(b, generator=gen) < self.aniso_prob
        theta = _uniform(gen, b, 0.0, math.pi)
        sy = torch.where(aniso, sy, sx)
        return {"kernels": gaussian_kernels(sx, sy, theta, self.kernel)}


@dataclass(frozen=True)
class MotionBlur(_KernelBlur):
    """Linear motion blur of a random length (pixels) and direction."""

    length_min: float = bounded(3.0, 0, 255)
    length_max: float = bounded(15.0, 0, 255)
    kernel: int = bounded(21, 3, 255)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        b = shape[0]
        length = _uniform(gen, b, self.length_min, self.length_max)
        theta = _uniform(gen, b, 0.0, math.pi)
        return {"kernels": motion_kernels(length, theta, self.kernel)}


@dataclass(frozen=True)
class DefocusBlur(_KernelBlur):
    """Out-of-focus (disk) blur of a random radius (pixels)."""

    radius_min: float = bounded(1.0, 0, 127)
    radius_max: float = bounded(5.0, 0, 127)
    kernel: int = bounded(15, 3, 255)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        return {"kernels": disk_kernels(_uniform(gen, shape[0], self.radius_min, self.radius_max), self.kernel)}


@dataclass(frozen=True)
class Resample:
    """Shrink by a random factor and enlarge back to the original size (soft, aliased detail).

    The interpolation mode is drawn per batch from `modes`.
    """

    scale_min: float = bounded(0.25, 0.01, 4)
    scale_max: float = bounded(1.0, 0.01, 4)
    modes: tuple[str, ...] = among(("area", "bilinear", "bicubic"), ("area", "bilinear", "bicubic"))

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        return {"scale": float(_uniform(gen, 1, self.scale_min, self.scale_max)),
                "mode": pick(gen, self.modes)}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = (max(1, round(h * p["scale"])), max(1, round(w * p["scale"])))
        mode = p["mode"]
        down = F.interpolate(x, size=small, mode=mode) if mode == "area" else \
            F.interpolate(x, size=small, mode=mode, align_corners=False)
        up_mode = "bilinear" if mode == "area" else mode
        return F.interpolate(down, size=(h, w), mode=up_mode, align_corners=False)
