"""Seeded hole-mask generators for inpainting, mixed by probability (LaMa / DeepFill v2 style).

Each generator is a small frozen dataclass called as `gen_mask(h, w, g) -> (H, W) float32 {0, 1}`
(1 = hole), drawing every random number from the torch.Generator `g`, so a mask set is
reproducible from its seed. Strokes are drawn with OpenCV (anti-aliasing off: masks are binary).

    strokes (thin / thick)   DeepFill v2 free-form brush: random walks of thick line segments
    large                    LaMa "large": a few very thick strokes plus boxes, up to ~50% of the image
    boxes                    1-3 axis-aligned rectangles
    scratches                long, thin, nearly straight lines (old-photo damage)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=g))


def _i(g: torch.Generator, lo: int, hi: int) -> int:
    """Integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _walk(m: np.ndarray, g: torch.Generator, vertices: int, max_len: float, width: int) -> None:
    h, w = m.shape
    y, x = _u(g, 0, h), _u(g, 0, w)
    angle = _u(g, 0, 2 * math.pi)
    for _ in range(vertices):
        angle += _u(g, -math.pi / 3, math.pi / 3) + (math.pi if _u(g, 0, 1) < 0.15 else 0.0)
        length = _u(g, max_len * 0.3, max_len)
        ny = min(max(y + length * math.sin(angle), 0), h - 1)
        nx = min(max(x + length * math.cos(angle), 0), w - 1)
        cv2.line(m, (int(x), int(y)), (int(nx), int(ny)), 1.0, width)
        cv2.circle(m, (int(nx), int(ny)), width // 2, 1.0, -1)
        y, x = ny, nx


@dataclass(frozen=True)
class Strokes:
    """Free-form brush strokes; `width` as a share of the shorter image side."""

    strokes_min: int = 1
    strokes_max: int = 4
    width_min: float = 0.02
    width_max: float = 0.06
    vertices_max: int = 8

    def __call__(self, h: int, w: int, g: torch.Generator) -> np.ndarray:
        m = np.zeros((h, w), np.float32)
        side = min(h, w)
        for _ in range(_i(g, self.strokes_min, self.strokes_max)):
            width = max(1, round(_u(g, self.width_min, self.width_max) * side))
            _walk(m, g, _i(g, 2, self.vertices_max), side * 0.3, width)
        return m


@dataclass(frozen=True)
class Boxes:
    count_min: int = 1
    count_max: int = 3
    size_min: float = 0.1  # side as a share of the image side
    size_max: float = 0.4

    def __call__(self, h: int, w: int, g: torch.Generator) -> np.ndarray:
        m = np.zeros((h, w), np.float32)
        for _ in range(_i(g, self.count_min, self.count_max)):
            bh, bw = round(_u(g, self.size_min, self.size_max) * h), round(_u(g, self.size_min, self.size_max) * w)
            y0, x0 = _i(g, 0, max(0, h - bh)), _i(g, 0, max(0, w - bw))
            m[y0 : y0 + bh, x0 : x0 + bw] = 1.0
        return m


@dataclass(frozen=True)
class Large:
    """LaMa-style large masks: very thick strokes and boxes until `coverage` is reached."""

    coverage_min: float = 0.15
    coverage_max: float = 0.5

    def __call__(self, h: int, w: int, g: torch.Generator) -> np.ndarray:
        target = _u(g, self.coverage_min, self.coverage_max)
        m = np.zeros((h, w), np.float32)
        side = min(h, w)
        for _ in range(12):
            if m.mean() >= target:
                break
            if _u(g, 0, 1) < 0.6:
                _walk(m, g, _i(g, 2, 6), side * 0.4, max(2, round(_u(g, 0.08, 0.2) * side)))
            else:
                m = np.maximum(m, Boxes(1, 1, 0.15, 0.45)(h, w, g))
        return m


@dataclass(frozen=True)
class Scratches:
    """Old-photo scratches: long thin lines, nearly straight, 1-3 px wide."""

    count_min: int = 1
    count_max: int = 6
    width_max: int = 3

    def __call__(self, h: int, w: int, g: torch.Generator) -> np.ndarray:
        m = np.zeros((h, w), np.float32)
        for _ in range(_i(g, self.count_min, self.count_max)):
            y0, x0 = _u(g, 0, h), _u(g, 0, w)
            angle = _u(g, 0, math.pi)
            length = _u(g, 0.3, 1.0) * math.hypot(h, w)
            pts = []
            for t in np.linspace(-0.5, 0.5, 6):  # a gently bending polyline
                bend = _u(g, -0.02, 0.02) * length
                pts.append((int(x0 + t * length * math.cos(angle) - bend * math.sin(angle)),
                            int(y0 + t * length * math.sin(angle) + bend * math.cos(angle))))
            cv2.polylines(m, [np.array(pts, np.int32)], False, 1.0, _i(g, 1, self.width_max))
        return m


@dataclass(frozen=True)
class MaskMix:
    """Pick one generator per image with the given probabilities (normalised)."""

    thin: float = 0.25
    thick: float = 0.25
    large: float = 0.3
    boxes: float = 0.1
    scratches: float = 0.1

    def generators(self) -> list[tuple[float, object]]:
        return [(self.thin, Strokes(1, 5, 0.01, 0.03)), (self.thick, Strokes(1, 4, 0.04, 0.1)),
                (self.large, Large()), (self.boxes, Boxes()), (self.scratches, Scratches())]

    def __call__(self, h: int, w: int, g: torch.Generator) -> np.ndarray:
        gens = self.generators()
        p = torch.tensor([max(0.0, q) for q, _ in gens], dtype=torch.float64)
        k = int(torch.multinomial(p / p.sum(), 1, generator=g))
        m = gens[k][1](h, w, g)
        if m.max() == 0:  # never return an empty mask
            m[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1] = 1.0
        return m


def batch_masks(make, b: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """(B, 1, H, W) float masks from a generator."""
    return torch.from_numpy(np.stack([make(h, w, g) for _ in range(b)]))[:, None]
