"""Tiled inference: run a network over overlapping tiles and feather the overlaps, so memory is
bounded by the tile size and there are no seams.

Each tile's output is weighted by a ramp that rises linearly over the overlap on every side
that borders another tile (sides on the image border keep full weight); the weighted outputs
are summed and divided by the summed weights.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..task import as_unit

Net = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
# conditioning: a tensor sliced like the input, or a function cond(tile, (rows, cols)) that builds
# it for the tile at those input coordinates (so a full-size condition map never has to exist)
Cond = torch.Tensor | Callable[[torch.Tensor, tuple[slice, slice]], torch.Tensor | None] | None


def _cond_for(cond: Cond, x: torch.Tensor, sl: tuple[slice, slice]) -> torch.Tensor | None:
    if cond is None:
        return None
    if callable(cond):
        c = cond(x, sl)
        return None if c is None else c.to(x.device, x.dtype)
    return cond[:, :, sl[0], sl[1]].to(x.device, x.dtype)


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
                  overlap: int = 32, scale: int = 1, device: torch.device | None = None,
                  tiles_per_call: int = 1, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """net(x_tile, cond_tile) over tiles of x (B, C, H, W) -> (B, C_out, scale*H, scale*W) float32.

    x may be uint8/uint16 (scaled to [0, 1] tile by tile) and may live on the CPU while the
    network runs on `device`: memory beyond one tile's activations is the float32 output alone.
    Tiles form a regular grid, so the summed feathering weights factor into a row profile times
    a column profile (no full-size weight map). tile <= 0, or an image that fits in one tile,
    runs in one pass. Every tile of the grid has the same size, so `tiles_per_call` of them can
    go through the network as one batch (a GPU is busier that way; a CPU is not faster).
    `progress(done, total)` is called after each network call with the tiles done so far (it
    may raise to cancel the run).
    """
    device = device or x.device
    def prepare(t: torch.Tensor) -> torch.Tensor:
        return as_unit(t.to(device))

    b, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        xt = prepare(x)
        y = net(xt, _cond_for(cond, xt, (slice(None), slice(None))))
        if progress is not None:
            progress(1, 1)
        return y
    overlap = max(0, min(overlap, tile // 2))
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    o = overlap * scale
    row_w = torch.zeros(h * scale, device=device)  # summed weights along y (same for every column)
    col_w = torch.zeros(w * scale, device=device)
    for y0 in ys:
        th = min(tile, h - y0)
        row_w[y0 * scale : (y0 + th) * scale] += _ramp(th * scale, o, y0 > 0, y0 + th < h, device)
    for x0 in xs:
        tw = min(tile, w - x0)
        col_w[x0 * scale : (x0 + tw) * scale] += _ramp(tw * scale, o, x0 > 0, x0 + tw < w, device)
    out = None
    th, tw = min(tile, h), min(tile, w)  # every tile's size (starts are at most size - tile)
    boxes = [(y0, x0) for y0 in ys for x0 in xs]
    for i in range(0, len(boxes), max(1, tiles_per_call)):
        group = boxes[i : i + max(1, tiles_per_call)]
        xts, cts = [], []
        for y0, x0 in group:
            xt = prepare(x[:, :, y0 : y0 + th, x0 : x0 + tw])
            xts.append(xt)
            cts.append(_cond_for(cond, xt, (slice(y0, y0 + th), slice(x0, x0 + tw))))
        xg = torch.cat(xts) if len(xts) > 1 else xts[0]  # (n * B, C, th, tw)
        cg = None if cts[0] is None else (torch.cat(cts) if len(cts) > 1 else cts[0])
        yg = net(xg, cg).float()  # (n * B, C_out, scale*th, scale*tw)
        if out is None:
            out = torch.zeros(b, yg.shape[1], h * scale, w * scale, device=device)
        for (y0, x0), yt in zip(group, yg.split(b)):
            wy = _ramp(th * scale, o, y0 > 0, y0 + th < h, device)
            wx = _ramp(tw * scale, o, x0 > 0, x0 + tw < w, device)
            yt = yt * (wy[:, None] * wx[None, :])[None, None]  # (1, 1, s*th, s*tw) feathering
            out[:, :, y0 * scale : (y0 + th) * scale, x0 * scale : (x0 + tw) * scale] += yt
        if progress is not None:
            progress(min(i + len(group), len(boxes)), len(boxes))
    out.div_(row_w.view(1, 1, -1, 1))
    return out.div_(col_w.view(1, 1, 1, -1))
