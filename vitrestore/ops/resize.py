"""MATLAB-compatible bicubic `imresize`, the resize the super-resolution literature uses to make
low-resolution test images (Set5/Set14 x2/x4 numbers are only comparable with it).

What makes it MATLAB's: the cubic kernel with a = -0.5; when shrinking, the kernel is widened by
1/scale (antialiasing); output pixel x (1-based) samples input position x/scale + (1 - 1/scale)/2;
borders are mirrored (symmetric padding); output size is ceil(scale * input size).

Each axis is one dense (out, in) weight matrix, so a resize is two matrix products on
(..., H, W) tensors of any batch shape, on any device.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@lru_cache(maxsize=64)
def resize_matrix(n_in: int, n_out: int, scale: float, antialias: bool = True) -> torch.Tensor:
    """(n_out, n_in) float64 weights of MATLAB's bicubic resize along one axis."""
    width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        width /= scale
    x = torch.arange(1, n_out + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # input position (1-based) each output pixel samples
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64).unsqueeze(0)  # (n_out, taps)
    dist = u.unsqueeze(1) - idx
    weights = scale * _cubic(dist * scale) if shrink else _cubic(dist)
    weights = weights / weights.sum(1, keepdim=True)
    # mirror indices outside [1, n_in] (symmetric padding), then to 0-based
    period = 2 * n_in
    j = torch.remainder(idx - 1, period)
    j = torch.where(j >= n_in, period - 1 - j, j).long()
    mat = torch.zeros(n_out, n_in, dtype=torch.float64)
    mat.scatter_add_(1, j, weights)
    return mat


def imresize(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> torch.Tensor:
    """Resize (..., H, W) float tensors like MATLAB's imresize(x, scale, 'bicubic').

    Give `scale` (output = ceil(scale * input)) or an explicit `size` (H, W).
    """
    h, w = x.shape[-2:]
    if size is None:
        if scale is None:
            raise ValueError("imresize needs scale or size")
        size = (math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9))
        sy = sx = scale
    else:
        sy, sx = size[0] / h, size[1] / w
    my = resize_matrix(h, size[0], sy, antialias).to(x.device, x.dtype if x.is_floating_point() else torch.float32)
    mx = resize_matrix(w, size[1], sx, antialias).to(my)
    return torch.matmul(torch.matmul(my, x.to(my.dtype)), mx.T)  # (..., H', W')
