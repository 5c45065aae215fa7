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


# --- texture and structure statistics (no pretrained network) --------------------------------------
def luminance(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luminance in [0, 1] (BT.601 weights); 1 channel passes."""
    if x.shape[1] == 1:
        return x
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def edge_map(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Sobel gradient magnitude of the (Gaussian-smoothed) luminance: (B, 1, H, W)."""
    y = luminance(x)
    if sigma > 0:
        size = 2 * int(3 * sigma) + 1
        g = _gaussian_1d(size, sigma, y.dtype, y.device)
        y = _blur(F.pad(y, [size // 2] * 4, mode="replicate"), g)
    kx = y.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3) / 8
    yp = F.pad(y, [1, 1, 1, 1], mode="replicate")
    gx, gy = F.conv2d(yp, kx), F.conv2d(yp, kx.transpose(-1, -2))
    return torch.sqrt(gx * gx + gy * gy + 1e-12)


def random_patches(x: torch.Tensor, size: int, count: int, gen: torch.Generator | None = None) -> torch.Tensor:
    """`count` random size x size patches of x (B, C, H, W), flattened: (count, C * size * size)."""
    b, c, h, w = x.shape
    n = torch.randint(0, b, (count,), generator=gen)
    top = torch.randint(0, h - size + 1, (count,), generator=gen)
    left = torch.randint(0, w - size + 1, (count,), generator=gen)
    dy, dx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    rows = (top.view(-1, 1, 1) + dy).to(x.device)  # (count, size, size)
    cols = (left.view(-1, 1, 1) + dx).to(x.device)
    picked = x.permute(0, 2, 3, 1)[n.to(x.device).view(-1, 1, 1), rows, cols]  # (count, size, size, C)
    return picked.reshape(count, -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 64,
                       gen: torch.Generator | None = None) -> torch.Tensor:
    """Sliced 1-Wasserstein distance between point sets a (N, D) and b (M, D): the mean over
    random unit directions of the L1 distance between the sorted projections (quantiles matched
    when N != M). Differentiable in both sets."""
    d = a.shape[1]
    dirs = torch.randn(d, projections, generator=gen).to(a)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, _ = torch.sort(a @ dirs, dim=0)  # (N, P)
    pb, _ = torch.sort(b @ dirs, dim=0)  # (M, P)
    if pa.shape[0] != pb.shape[0]:
        q = torch.linspace(0, 1, pa.shape[0], device=a.device)
        idx = (q * (pb.shape[0] - 1)).round().long()
        pb = pb[idx]
    return (pa - pb).abs().mean()


def patch_swd(x: torch.Tensor, y: torch.Tensor, size: int = 7, scales: int = 3, count: int = 4096,
              projections: int = 128, seed: int = 0) -> float:
    """Style distance between images x and y (B, 3, H, W) that needs no pretrained network:
    sliced Wasserstein distance between their distributions of size x size RGB patches, at
    `scales` levels of a 2x area pyramid, averaged over the levels. Seeded, so repeatable."""
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for level in range(scales):
        if level:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        s = min(size, x.shape[-1], x.shape[-2], y.shape[-1], y.shape[-2])
        px, py = random_patches(x.double(), s, count, gen), random_patches(y.double(), s, count, gen)
        total += float(sliced_wasserstein(px, py, projections, gen))
    return total / scales


def edge_ssim(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.0) -> float:
    """Structure kept: SSIM between the luminance edge maps of x and y, each scaled to [0, 1]
    by its own 99th percentile (a global contrast change is not penalised)."""
    ex, ey = edge_map(x.double(), sigma), edge_map(y.double(), sigma)
    ex = (ex / ex.flatten(1).quantile(0.99, dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)).clamp(0, 1)
    ey = (ey / ey.flatten(1).quantile(0.99, dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)).clamp(0, 1)
    return float(ssim_map(ex, ey)[0].mean())
