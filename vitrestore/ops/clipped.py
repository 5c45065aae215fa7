"""The noise a file shows where Gaussian noise met black or white.

A file holds values in [0, 1]: noise of std sigma added to a value near 0 or 1 is clipped, so the
file shows less of it there (at 0, about 0.58 sigma). A denoiser told one sigma for the whole image
over-smooths the dark and saturated parts; told the level each pixel actually carries, it need not
(FFDNet's clip-aware variant). Task-agnostic: tasks/denoise.py builds its level map from it.

    clipped_std   the std of clip(m + sigma Z, 0, 1), Z standard normal, in closed form
    local_mean    a small box mean of an image (reflect-padded), the value a pixel's noise sits on
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) * _INV_SQRT_2PI


def clipped_std(mean: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Std of clip(mean + sigma * Z, 0, 1) (mean and sigma on the 0-1 scale, broadcast together);
    0 where sigma is 0. Censored-normal moments: with a = -mean / sigma, b = (1 - mean) / sigma,
        E[X]   = mean (P(b) - P(a)) + sigma (p(a) - p(b)) + (1 - P(b))
        E[X^2] = mean^2 (P(b) - P(a)) + 2 mean sigma (p(a) - p(b))
                 + sigma^2 (P(b) - P(a) + a p(a) - b p(b)) + (1 - P(b))
    (P, p: the standard normal's cdf and pdf)."""
    mean = mean.double()
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=mean.device)
    s = sigma.clamp_min(1e-12)
    a, b = -mean / s, (1.0 - mean) / s
    cdf_a, cdf_b, pdf_a, pdf_b = torch.special.ndtr(a), torch.special.ndtr(b), _pdf(a), _pdf(b)
    inside = cdf_b - cdf_a
    m1 = mean * inside + s * (pdf_a - pdf_b) + (1.0 - cdf_b)
    m2 = mean * mean * inside + 2 * mean * s * (pdf_a - pdf_b) + s * s * (inside + a * pdf_a - b * pdf_b) \
        + (1.0 - cdf_b)
    std = (m2 - m1 * m1).clamp_min(0).sqrt()
    return torch.where(sigma > 0, std, torch.zeros_like(std)).float()


def local_mean(x: torch.Tensor, size: int = 5) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): the mean over a size x size box (reflect-padded; replicate
    where the image is too small to reflect)."""
    r = size // 2
    mode = "reflect" if x.shape[-1] > r and x.shape[-2] > r else "replicate"
    return F.avg_pool2d(F.pad(x.float(), (r, r, r, r), mode=mode), size, stride=1)
