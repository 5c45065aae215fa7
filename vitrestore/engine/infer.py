"""Tiled inference: run a network over overlapping tiles and feather the overlaps, so memory is
bounded by the tile size and there are no seams.

Each tile's output is weighted by a ramp that rises linearly over the overlap on every side
that borders another tile (sides on the image border keep full weight); the weighted outputs
are summed and divided by the summed weights.
"""
from __future__ import annotations

from typing import Callable

import torch

Net = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
# conditioning: a tensor sliced like the input, or a function that builds it for each tile (so a
# full-size condition map never has to exist for a huge image)
Cond = torch.Tensor | Callable[[torch.Tensor], torch.Tensor | None] | None


def _cond_for(cond: Cond, x: torch.Tensor, sl: tuple[slice, slice]) -> torch.Tensor | None:
    if cond is None:
        return None
    if callable(cond):
        return cond(x)
    return cond[:, :, sl[0], sl[1]]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, size) with tiles of `tile` that overlap by at least `overlap`."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(length: int, overlap: int, fade_start: bool, fade_end: bool, device) -> torch.Tensor:
    """(length,) weights: linear fade-in over `overlap` at the start/end where requested."""
    w = torch.ones(length, device=device)
    if overlap <= 0:
        return w
    r = (torch.arange(overlap, device=device, dtype=torch.float32) + 0.5) / overlap
    if fade_start:
        w[:overlap] = torch.minimum(w[:overlap], r)
    if fade_end:
        w[-overlap:] = torch.minimum(w[-overlap:], r.flip(0))
    return w


@torch.no_grad()
def tiled_forward(net: Net, x: torch.Tensor, cond: Cond = None, tile: int = 512,
                  overlap: int = 32, scale: int = 1) -> torch.Tensor:
    """net(x_tile, cond_tile) over tiles of x (B, C, H, W) -> (B, C_out, scale*H, scale*W).

    tile <= 0, or an image that fits in one tile, runs in one pass. Memory beyond one tile's
    activations: the output and a one-channel weight map.
    """
    b, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return net(x, _cond_for(cond, x, (slice(None), slice(None))))
    overlap = max(0, min(overlap, tile // 2))
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = None
    weight = torch.zeros(1, 1, h * scale, w * scale, device=x.device)
    for y0 in ys:
        for x0 in xs:
            th, tw = min(tile, h - y0), min(tile, w - x0)
            xt = x[:, :, y0 : y0 + th, x0 : x0 + tw]
            ct = _cond_for(cond, xt, (slice(y0, y0 + th), slice(x0, x0 + tw)))
            yt = net(xt, ct)  # (B, C_out, scale*th, scale*tw)
            if out is None:
                out = torch.zeros(b, yt.shape[1], h * scale, w * scale, device=x.device, dtype=yt.dtype)
            o = overlap * scale
            wy = _ramp(th * scale, o, y0 > 0, y0 + th < h, x.device)
            wx = _ramp(tw * scale, o, x0 > 0, x0 + tw < w, x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]  # (1, 1, s*th, s*tw)
            sl = (slice(None), slice(None), slice(y0 * scale, (y0 + th) * scale), slice(x0 * scale, (x0 + tw) * scale))
            out[sl] += yt * wt.to(yt.dtype)
            weight[sl] += wt
    return out.div_(weight.to(out.dtype))
