"""Self-supervised pieces for `--adapt` (no clean image): what a noisy photo tells about its own
noise. Task-agnostic; tasks/denoise_adapt.py builds its objective from them.

    neighbor_subimages  two half-size images from different pixels of each 2x2 cell: the same
                        scene, independent noise where the noise is white (Neighbor2Neighbor)
    flat_mask           the flattest share of an image's pixels (where a residual is mostly noise)
    fit_noise_level     the noise-level function var = a + b * x per channel (shot + read noise),
                        fitted on flat pixels of residuals
    noise_std           a robust estimate of an image's noise std from the image alone
                        (Immerkaer's Laplacian-difference operator, median over pixels)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def neighbor_cells(b: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two different cell positions (0..3) per 2x2 cell: (B, h/2, w/2) each."""
    first = torch.randint(0, 4, (b, h // 2, w // 2), generator=gen)
    second = (first + torch.randint(1, 4, (b, h // 2, w // 2), generator=gen)) % 4
    return first, second


def pick_cells(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W), H and W even -> (B, C, H/2, W/2): pixel idx (B, H/2, W/2) of each 2x2 cell."""
    b, c, h, w = x.shape
    cells = F.pixel_unshuffle(x, 2).view(b, c, 4, h // 2, w // 2)  # (B, C, 4, H/2, W/2)
    return torch.gather(cells, 2, idx[:, None, None].expand(b, c, 1, h // 2, w // 2)).squeeze(2)


def neighbor_subimages(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, C, H, W) -> two (B, C, H//2, W//2) sub-images (odd last row/column dropped)."""
    b, _, h, w = x.shape
    x = x[..., : h // 2 * 2, : w // 2 * 2]
    first, second = neighbor_cells(b, x.shape[2], x.shape[3], gen)
    return pick_cells(x, first), pick_cells(x, second)


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H-1, W-1): mean absolute horizontal + vertical difference."""
    gx = (x[..., :-1, 1:] - x[..., :-1, :-1]).abs()
    gy = (x[..., 1:, :-1] - x[..., :-1, :-1]).abs()
    return (gx + gy).mean(1, keepdim=True)


def flat_mask(x: torch.Tensor, share: float = 0.3) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H-1, W-1) bool: its `share` of the flattest pixels (per image)."""
    e = gradient_energy(x)
    cut = e.flatten(1).quantile(share, dim=1).view(-1, 1, 1, 1)
    return e < cut


def fit_noise_level(clean: list[torch.Tensor], residual: list[torch.Tensor], share: float = 0.3
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel noise-level function var = a + b * x from estimates of the clean images
    (each (1, C, H, W)) and their residuals (noisy - clean), on the flattest `share` of each
    image's pixels (least squares; a >= 1e-7 and b >= 0 after the fit): (a, b), each (C,)."""
    xs, rs = [], []
    for x, r in zip(clean, residual):
        flat = flat_mask(x, share)[0, 0]  # (H-1, W-1)
        xs.append(x[0, :, :-1, :-1][:, flat])  # (C, n)
        rs.append(r[0, :, :-1, :-1][:, flat])
    x, r = torch.cat(xs, 1), torch.cat(rs, 1)  # (C, N)
    a, b = [], []
    for c in range(x.shape[0]):
        design = torch.stack([torch.ones_like(x[c]), x[c]], 1)  # (N, 2)
        sol = torch.linalg.lstsq(design.double(), (r[c].double() ** 2)[:, None]).solution[:, 0]
        a.append(max(float(sol[0]), 1e-7))
        b.append(max(float(sol[1]), 0.0))
    return torch.tensor(a), torch.tensor(b)


# Immerkaer (1996): a 3x3 operator that cancels planes and linear ramps; white noise of std s
# comes out with std 6 s (the root of the sum of its squared weights, 36)
_IMMERKAER = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_std(x: torch.Tensor, pool: int = 2) -> float:
    """(1, C, H, W) in [0, 1] -> the noise std (same scale), from the median absolute response
    of Immerkaer's operator over every channel (robust to edges, which are a minority of
    pixels): median |N * x| / (0.6745 * 6). Measured on `pool` x `pool` means times `pool`
    (the same for white noise): a camera's demosaiced, JPEG'd noise is correlated between
    neighbours, which the operator at full resolution mostly misses (CC15: 0.7-1.7/255 at full
    resolution, 3-4.5/255 pooled; their clean means 1-1.5/255 pooled)."""
    if pool > 1:
        x = F.avg_pool2d(x.float(), pool) * pool
    c = x.shape[1]
    k = _IMMERKAER.to(x.dtype).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    resp = F.conv2d(x.float(), k.float(), groups=c)  # (1, C, H-2, W-2)
    return float(resp.abs().median()) / (0.6745 * 6)
