"""An image's edge flow and noise smeared along it (line integral convolution).

The flow is the local orientation of the image's edges: the minor eigenvector of the smoothed
structure tensor, i.e. the direction in which luminance changes least. Line integral convolution
(LIC) averages a noise image along the flow's streamlines, so the noise becomes streaks that follow
the picture's outlines and swirl in its flat areas, a classical way to draw brush strokes.
Everything is plain tensor maths (no learned weights), differentiable and device-agnostic.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vitrestore.metrics import luminance


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = 2 * int(3 * sigma + 0.5) + 1
    from kornia.filters import gaussian_blur2d  # noqa: PLC0415  (slow to import: only when used)

    return gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="replicate")


def edge_flow(image: torch.Tensor, sigma: float = 6.0) -> torch.Tensor:
    """Unit tangent field (B, 2, H, W) as (dx, dy) along the edges of image (B, C, H, W): the
    structure tensor of the slightly smoothed luminance, averaged over `sigma` pixels."""
    y = luminance(image) if image.shape[1] == 3 else image.mean(1, keepdim=True)  # (B, 1, H, W)
    y = _blur(y, 1.0)
    gx = F.pad(y[..., :, 2:] - y[..., :, :-2], (1, 1, 0, 0), mode="replicate") / 2
    gy = F.pad(y[..., 2:, :] - y[..., :-2, :], (0, 0, 1, 1), mode="replicate") / 2
    j = _blur(torch.cat([gx * gx, gx * gy, gy * gy], 1), sigma)  # (B, 3, H, W): Jxx, Jxy, Jyy
    theta = 0.5 * torch.atan2(2 * j[:, 1:2], j[:, 0:1] - j[:, 2:3])  # the gradient's direction
    return torch.cat([-torch.sin(theta), torch.cos(theta)], 1)  # rotated a quarter turn


def line_integral(noise: torch.Tensor, flow: torch.Tensor, length: int) -> torch.Tensor:
    """noise (B, C, H, W) averaged along the streamlines of flow (B, 2, H, W), `length` one-pixel
    steps each way from every pixel (2 * length + 1 samples). The flow is a field of
    orientations, not directions, so each step keeps the sign nearest the previous one."""
    b, _, h, w = noise.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=noise.dtype, device=noise.device),
                            torch.arange(w, dtype=noise.dtype, device=noise.device), indexing="ij")
    start = torch.stack([xs, ys])[None].expand(b, 2, h, w)  # (B, 2, H, W) pixel positions (x, y)
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=noise.dtype, device=noise.device)

    def sample(field: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        grid = (pos.permute(0, 2, 3, 1) * scale - 1)  # (B, H, W, 2) in [-1, 1]
        return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)

    total = noise.clone()
    for sign in (1.0, -1.0):
        pos, heading = start, flow * sign
        for _ in range(length):
            step = sample(flow, pos)
            step = torch.where((step * heading).sum(1, keepdim=True) < 0, -step, step)
            pos, heading = pos + step, step
            total = total + sample(noise, pos)
    return total / (2 * length + 1)


def stroke_noise(image: torch.Tensor, length: int, width: int, gen: torch.Generator | None = None,
                 flow_sigma: float = 6.0, base: torch.Tensor | None = None) -> torch.Tensor:
    """Unit-variance streaks (B, 1, H, W) for image (B, C, H, W): Gaussian noise with a grain of
    `width` pixels, smeared `length` pixels each way along the image's edge flow. Seeded (0)
    unless `gen` is given, so the same photo gets the same strokes; `base` (B, 1, H, W): that
    grained noise given (a clip's frame: noise fixed to the picture, vitrestore/motion.py)."""
    b, _, h, w = image.shape
    if base is None:
        gen = torch.Generator().manual_seed(0) if gen is None else gen
        coarse = torch.randn(b, 1, -(-h // width), -(-w // width), generator=gen)
        base = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) if width > 1 else coarse
    noise = base.to(image.device)
    if length <= 0 and width <= 1:
        return noise  # plain unit Gaussian noise, one value per pixel
    if length > 0:
        noise = line_integral(noise, edge_flow(image.float(), flow_sigma), length)
    # averaging (the upsampling, the streaks) shrinks the spread: back to unit variance
    return (noise - noise.mean(dim=(1, 2, 3), keepdim=True)) / (noise.std(dim=(1, 2, 3), keepdim=True) + 1e-6)
