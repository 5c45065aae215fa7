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


def _gaussian_1d(size: int, sigma: float, dtype, device) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype, device=device) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter per channel: (B, C, H, W) -> (B, C, H-k+1, W-k+1)."""
    c, k = x.shape[1], g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 11,
             sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps (B, C, h, w) with a 'valid' Gaussian window."""
    g = _gaussian_1d(window, sigma, x.dtype, x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mu_x**2
    syy = _blur(y * y, g) - mu_y**2
    sxy = _blur(x * y, g) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return lum * cs, cs


def ssim(x: torch.Tensor, y: torch.Tensor, border: int = 0, y_channel: bool = False) -> float:
    """Mean SSIM over the batch (images quantised to 8 bits; computed in float32, separably)."""
    x, y = _prepare(x, y, border, y_channel)
    x, y = (x * 255).round().float() / 255, (y * 255).round().float() / 255
    return float(ssim_map(x, y, data_range=1.0)[0].double().mean())
