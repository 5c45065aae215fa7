"""Image quality metrics on float tensors (B, C, H, W) in [0, 1].

PSNR and SSIM follow the common restoration protocol: optional border crop, optional
evaluation on the Y channel (ITU-R BT.601, as MATLAB's rgb2ycbcr), SSIM with an 11x11
Gaussian window (sigma 1.5) on the 0-255 scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) luma in [16/255, 235/255] (BT.601)."""
    w = x.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return ((x * w).sum(1, keepdim=True) + 16.0) / 255.0


def _prepare(x: torch.Tensor, y: torch.Tensor, border: int, y_channel: bool):
    if x.shape != y.shape:
        raise ValueError(f"metric inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    x, y = x.double().clamp(0, 1), y.double().clamp(0, 1)
    if y_channel and x.shape[1] == 3:
        x, y = rgb_to_y(x), rgb_to_y(y)
    if border:
        x, y = x[..., border:-border, border:-border], y[..., border:-border, border:-border]
    return x, y


def psnr(x: torch.Tensor, y: torch.Tensor, border: int = 0, y_channel: bool = False) -> float:
    """Mean PSNR in dB over the batch (images quantised to 8 bits first, as saved files are)."""
    x, y = _prepare(x, y, border, y_channel)
    x, y = (x * 255).round(), (y * 255).round()
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(255.0**2 / mse)).mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 11,
             sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps (B, C, h, w) with a 'valid' Gaussian window."""
    c = x.shape[1]
    k = _gaussian_window(window, sigma, x.dtype).to(x.device).expand(c, 1, window, window)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = F.conv2d(x, k, groups=c), F.conv2d(y, k, groups=c)
    sxx = F.conv2d(x * x, k, groups=c) - mu_x**2
    syy = F.conv2d(y * y, k, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, k, groups=c) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return lum * cs, cs


def ssim(x: torch.Tensor, y: torch.Tensor, border: int = 0, y_channel: bool = False) -> float:
    """Mean SSIM over the batch (0-255 scale, images quantised to 8 bits)."""
    x, y = _prepare(x, y, border, y_channel)
    x, y = (x * 255).round(), (y * 255).round()
    return float(ssim_map(x, y, data_range=255.0)[0].mean())
