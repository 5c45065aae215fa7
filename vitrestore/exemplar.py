"""Exemplar fill: complete a hole with patches copied from the known part of the same image.

Coarse to fine, as in Wexler, Shechtman & Irani, "Space-time completion of video" (2007): at
each pyramid level, alternate (a) for every patch that touches the hole, find its nearest patch
lying wholly in the known region, with PatchMatch (Barnes et al. 2009: random initialisation,
propagation from neighbours, random search at shrinking radii), and (b) re-estimate every hole
pixel as the similarity-weighted vote of all those nearest patches that cover it. The result
holds real texture of the image (grass stays grass, a wall keeps its grain), which a smooth
diffusion fill or a squared-error network cannot give a large hole.

Everything is vectorised over the hole's patches (torch on the CPU): a PatchMatch pass
propagates from neighbours 1 and 4 px away in each direction at the coarsest level (1 px below
it, where the field comes scaled up from the level above), so good matches spread across a
level in a few passes rather than one sequential sweep.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

CHUNK = 65536  # patches per distance evaluation (3 x CHUNK x patch^2 floats at a time)


def _levels(h: int, w: int, coarsest: int) -> int:
    """Pyramid depth: halve while the longer side stays >= `coarsest` px and the shorter >= 16."""
    n = 1
    while max(h, w) >> n >= coarsest and min(h, w) >> n >= 16:
        n += 1
    return n


def _down(image: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, H, W), (H, W) bool -> half size; a coarse pixel is hole if any of its fine pixels is,
    known ones are the mean of their (all known) fine pixels."""
    known = (~hole).float()[None, None]  # (1, 1, H, W)
    num = F.avg_pool2d(image[None] * known, 2, ceil_mode=True)[0]  # (3, H/2, W/2)
    den = F.avg_pool2d(known, 2, ceil_mode=True)[0]  # (1, H/2, W/2)
    coarse_hole = F.max_pool2d(hole.float()[None, None], 2, ceil_mode=True)[0, 0] > 0
    return num / den.clamp_min(1e-6), coarse_hole


class _Level:
    """One pyramid level: the image being filled, its valid sources, its targets and their field."""

    def __init__(self, image: torch.Tensor, hole: torch.Tensor, patch: int, gen: torch.Generator):
        self.image, self.hole, self.gen = image, hole, gen
        _, self.h, self.w = image.shape
        r = self.r = patch // 2
        oy, ox = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        self.oy, self.ox = oy.reshape(-1), ox.reshape(-1)  # (P,) patch offsets
        touched = F.max_pool2d(hole.float()[None, None], patch, 1, r)[0, 0] > 0  # patch meets the hole
        interior = torch.zeros_like(hole)
        interior[r : self.h - r, r : self.w - r] = True
        self.valid = (~touched & interior).reshape(-1)  # (H*W,) source centres: patch wholly known
        self.sources = self.valid.nonzero()[:, 0]  # (S,)
        t = touched.reshape(-1).nonzero()[:, 0]  # (N,) target centres
        self.ty, self.tx = t // self.w, t % self.w
        self.field = torch.empty(0, dtype=torch.long)  # (N,) flat source index per target
        self.cost = torch.empty(0)
        self.steps = (1, 4)  # propagation distances, px

    def source_grid(self) -> torch.Tensor:
        """(H, W) flat source index of every pixel: the field at the targets, itself elsewhere."""
        grid = torch.arange(self.h * self.w).reshape(self.h, self.w)
        grid.view(-1)[self.ty * self.w + self.tx] = self.field
        return grid

    def random_sources(self, n: int) -> torch.Tensor:
        return self.sources[torch.randint(len(self.sources), (n,), generator=self.gen)]

    def cache_targets(self) -> None:
        """Gather every target patch once per search pass (the image only changes in `vote`);
        target patches clamp at the image border."""
        rows = self.image.permute(1, 2, 0).reshape(-1, 3)  # (H*W, 3): a patch's pixels are rows
        self.targets = torch.empty(len(self.ty), len(self.oy), 3)  # (N, P, 3)
        for a in range(0, len(self.ty), CHUNK):
            b = a + CHUNK
            tyy = (self.ty[a:b, None] + self.oy).clamp_(0, self.h - 1)  # (n, P)
            txx = (self.tx[a:b, None] + self.ox).clamp_(0, self.w - 1)
            self.targets[a:b] = rows[tyy * self.w + txx]
        self.rows = rows

    def distance(self, src: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Sum of squared differences between the cached target patches (all, or those at
        `idx`) and the patches centred at flat indices `src` (always inside the image)."""
        out = torch.empty(len(src))
        shift = self.oy * self.w + self.ox  # (P,)
        for a in range(0, len(src), CHUNK):
            b = a + CHUNK
            target = self.targets[a:b] if idx is None else self.targets[idx[a:b]]  # (n, P, 3)
            source = self.rows[src[a:b, None] + shift]  # (n, P, 3)
            out[a:b] = (target - source).square_().sum((1, 2))
        return out

    def try_sources(self, sy: torch.Tensor, sx: torch.Tensor) -> None:
        """Offer each target the source centred at (sy, sx); keep it where valid and nearer."""
        inside = (sy >= 0) & (sy < self.h) & (sx >= 0) & (sx < self.w)
        cand = sy.clamp(0, self.h - 1) * self.w + sx.clamp(0, self.w - 1)
        ok = (inside & self.valid[cand]).nonzero()[:, 0]
        if len(ok) == 0:
            return
        d = self.distance(cand[ok], ok)
        better = d < self.cost[ok]
        self.field[ok[better]] = cand[ok][better]
        self.cost[ok[better]] = d[better]

    def search(self) -> None:
        """One PatchMatch pass: propagation from neighbours `steps` px away, then random search at
        radii shrinking by 4 from the image's side to 1 px."""
        grid = self.source_grid()
        for step in self.steps:
            for dy, dx in ((0, step), (0, -step), (step, 0), (-step, 0)):
                ny, nx = (self.ty - dy).clamp(0, self.h - 1), (self.tx - dx).clamp(0, self.w - 1)
                s = grid[ny, nx]  # the neighbour's source, shifted back by the same step
                self.try_sources(s // self.w + dy, s % self.w + dx)
        radius = float(max(self.h, self.w))
        while radius >= 1:
            sy, sx = self.field // self.w, self.field % self.w
            jitter = (torch.rand(2, len(sy), generator=self.gen) * 2 - 1) * radius
            self.try_sources(sy + jitter[0].round().long(), sx + jitter[1].round().long())
            radius /= 4

    def vote(self) -> None:
        """Hole pixels := similarity-weighted mean of the source pixels every target patch
        covering them proposes (weights exp(-d / 2 sigma^2), sigma^2 the 75th percentile of d)."""
        sigma2 = torch.quantile(self.cost[: 1 << 20], 0.75).clamp_min(1e-8)  # quantile caps its input size
        weight = torch.exp(-self.cost / (2 * sigma2))  # (N,)
        flat = self.image.reshape(3, -1)
        num = torch.zeros(3, self.h * self.w)
        den = torch.zeros(self.h * self.w)
        for oy, ox in zip(self.oy.tolist(), self.ox.tolist()):
            py, px = self.ty + oy, self.tx + ox  # the pixel this offset of each target patch covers
            ok = (py >= 0) & (py < self.h) & (px >= 0) & (px < self.w)
            dest = (py * self.w + px)[ok]
            value = flat[:, self.field[ok] + oy * self.w + ox]  # (3, n)
            num.index_add_(1, dest, value * weight[ok])
            den.index_add_(0, dest, weight[ok])
        hole = self.hole.reshape(-1) & (den > 0)
        flat[:, hole] = num[:, hole] / den[hole]

    def start(self, coarse: "_Level | None") -> None:
        """The field from the coarser level (scaled up), else random; invalid entries random."""
        n = len(self.ty)
        if coarse is None or len(coarse.field) == 0:  # no coarser level, or it had nothing to copy
            self.field = self.random_sources(n)
        else:
            s = coarse.source_grid()[(self.ty // 2).clamp(max=coarse.h - 1), (self.tx // 2).clamp(max=coarse.w - 1)]
            sy, sx = (s // coarse.w) * 2 + self.ty % 2, (s % coarse.w) * 2 + self.tx % 2
            inside = (sy < self.h) & (sx < self.w)
            cand = sy.clamp(max=self.h - 1) * self.w + sx.clamp(max=self.w - 1)
            bad = ~(inside & self.valid[cand])
            cand[bad] = self.random_sources(int(bad.sum()))
            self.field = cand
        self.cache_targets()
        self.cost = self.distance(self.field)


@torch.no_grad()
def exemplar_fill(image: torch.Tensor, hole: torch.Tensor, init: torch.Tensor | None = None,
                  patch: int = 5, iters: int = 4, coarsest: int = 64, seed: int = 0,
                  check: Callable[[], None] | None = None) -> torch.Tensor:
    """image (3, H, W) float, hole (H, W) bool (True = fill) -> (3, H, W): the known pixels
    unchanged, the hole filled with patches of the known region.

    `init` (3, H, W) is the first guess for the hole at the coarsest level (a smooth fill gives
    the layout; default: the mean known colour). `iters` search-and-vote rounds per level: twice
    that at the coarsest (random start, propagation 1 and 4 px), half at the finest (the costly
    one; its field comes from the level above). `seed` fixes PatchMatch's random draws. A hole
    with no wholly known patch to copy from (at a level) keeps its guess there. `check()`, if
    given, is called after each search and each vote: raising there stops the fill (a cancel)."""
    if image.dim() != 3 or hole.shape != image.shape[-2:]:
        raise ValueError(f"exemplar_fill: image (3, H, W) and hole (H, W), got {tuple(image.shape)} "
                         f"and {tuple(hole.shape)}")
    gen = torch.Generator().manual_seed(seed)
    image, hole = image.float().cpu(), hole.cpu().bool()
    if not hole.any():
        return image.clone()
    if init is None:
        guess = image[:, ~hole].mean(1)[:, None, None].expand_as(image)
    else:
        guess = init.float().cpu()
    pyramid = [(image.masked_fill(hole, 0), hole)]
    for _ in range(_levels(*hole.shape, coarsest) - 1):
        pyramid.append(_down(*pyramid[-1]))
    coarse: _Level | None = None
    for depth in range(len(pyramid) - 1, -1, -1):
        img, hl = pyramid[depth]
        img = img.clone()
        prior = guess if coarse is None else coarse.image
        prior = F.interpolate(prior[None], size=img.shape[-2:], mode="bilinear", align_corners=False)[0]
        img[:, hl] = prior[:, hl]
        level = _Level(img, hl, patch, gen)
        if len(level.sources) == 0:
            coarse = level  # nothing to copy from at this scale: keep the guess
            continue
        fresh = coarse is None or len(coarse.field) == 0  # no field above to scale up: a random start
        level.start(coarse)
        if not fresh:  # the field comes scaled up from the coarser level: already coherent
            level.steps = (1,)
        rounds = 2 * iters if fresh else iters if depth > 0 else max(1, iters // 2)
        for r in range(rounds):
            if r:  # the vote changed the hole: refresh the patches and distances (`start` did the first)
                level.cache_targets()
                level.cost = level.distance(level.field)
            level.search()
            if check is not None:
                check()
            level.vote()
            if check is not None:
                check()
        coarse = level
    assert coarse is not None
    return coarse.image
