"""Where each pixel of a clip's frame was in the clip's first frame (issue 33), so that what a
task draws for a frame (stylize's stroke noise) moves with the picture instead of staying put on
the screen while the picture pans under it.

    track = PixelTrack()
    track.start()                      # a new clip
    for rgb in frames:                 # every frame from the first, in order
        coords = track(rgb)            # (H, W, 2) float64: each pixel's (x, y) in the first frame
    noise = anchored_noise(coords, grain=3)   # (H, W) float32 Gaussian, fixed to the picture

Each frame's coordinates are the previous frame's, carried along the optical flow of the inputs
(vitrestore/optical_flow.py). Where the previous frame moved by the flow does not match this one
(new content coming in, an occlusion; the whole frame past a share: a cut), or where a long zoom
has stretched a pixel over more than 4 first-frame pixels (or under 1/4), the pixels get fresh
coordinates: a part of the noise plane never used before. No state but the previous frame and its coordinates: memory does
not grow with the clip. The same frames give the same coordinates on every run (a resumed clip
runs the track again from the first frame: flow only, no model).
"""
from __future__ import annotations

import cv2
import numpy as np

from .optical_flow import input_flow, mismatch, remap

FRESH_STRIDE = 1e6  # fresh coordinates of frame i lie at y + (i + 1) * FRESH_STRIDE: never reused


class PixelTrack:
    """Each pixel's coordinates in the clip's first frame, frame after frame (see the module)."""

    def __init__(self, tolerance: float = 24.0, stretch: float = 4.0, cut: float = 0.3):
        self.tolerance = tolerance  # levels (0-255) of mismatch past which a pixel is new content
        self.stretch = stretch  # first-frame area a pixel may cover, or 1/stretch of it, before fresh coordinates
        self.cut = cut  # the share of new pixels past which the whole frame is new (a cut)
        self.start()

    def start(self) -> None:
        """Forget the previous clip."""
        self.previous: np.ndarray | None = None
        self.coords: np.ndarray | None = None  # (H, W, 2) float64 of the last frame given
        self.area: np.ndarray | None = None  # (H, W) float64: first-frame pixels one pixel covers
        self.index = 0

    def __repr__(self) -> str:  # a clip's resume key holds it: other settings start over
        return f"PixelTrack(tolerance={self.tolerance}, stretch={self.stretch}, cut={self.cut})"

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The next frame (H, W, 3) uint8 -> (H, W, 2) float64: where each of its pixels was in the
        first frame (x, y)."""
        h, w = rgb.shape[:2]
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        grid = np.stack([xs, ys], -1)  # (h, w, 2)
        fresh = grid + [0.0, (self.index + 1) * FRESH_STRIDE]  # a part of the plane no frame used
        if self.previous is None or self.previous.shape != rgb.shape:
            coords, area = (grid if self.previous is None else fresh), np.ones((h, w))
        else:
            flow = input_flow(rgb, self.previous)  # (h, w, 2): where each pixel was in the previous frame
            at = grid + flow
            sx, sy = np.clip(at[..., 0], 0, w - 1).astype(np.float32), np.clip(at[..., 1], 0, h - 1).astype(np.float32)
            # the offset from the grid is carried, not the coordinates: it is smooth, so remap's
            # 1/32 px weights add no drift (carried coordinates slid 1.2-1.5 px in 240 frames)
            offset = cv2.remap(self.coords - grid, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            coords = at + offset  # (beyond the previous frame's edge: carried on at the same step)
            step = (1 + np.gradient(flow[..., 0], axis=1)) * (1 + np.gradient(flow[..., 1], axis=0)) \
                - np.gradient(flow[..., 0], axis=0) * np.gradient(flow[..., 1], axis=1)  # (h, w): det(I + grad flow)
            area = cv2.remap(self.area, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) * step
            moved = remap(self.previous.astype(np.float32), flow)
            new = mismatch(rgb, moved, 2) > self.tolerance  # (h, w): content the previous frame did not show
            new |= (area > self.stretch) | (area < 1 / self.stretch)  # a long zoom: strokes neither blobs nor grain
            if new.mean() > self.cut:
                new[:] = True
            coords[new], area[new] = fresh[new], 1.0
        self.previous, self.coords, self.area, self.index = rgb, coords, area, self.index + 1
        return coords


def anchored_noise(coords: np.ndarray, grain: int, seed: int = 0) -> np.ndarray:
    """(H, W) float32 Gaussian noise with a grain of `grain` pixels at the given coordinates
    (H, W, 2): a standard Gaussian value drawn for each grain-sized cell of the plane (a hash of
    the cell and the seed), blended bilinearly between cell centres (so its spread is 0.5-1 by
    where a pixel falls in its cell; callers normalise), moving smoothly with the coordinates and
    the same wherever the same coordinates come back."""
    u = (coords[..., 0] + 0.5) / grain - 0.5  # (H, W) in cells from pixel centres, as a bilinear upsampling
    v = (coords[..., 1] + 0.5) / grain - 0.5  # of one value a cell (align_corners=False) places them
    i, j = np.floor(u), np.floor(v)
    a, b = (u - i)[..., None], (v - j)[..., None]  # (H, W, 1) weights
    i, j = i.astype(np.int64), j.astype(np.int64)
    corners = np.stack([_cell_gaussian(i + di, j + dj, seed) for dj in (0, 1) for di in (0, 1)], -1)  # (H, W, 4)
    weights = np.concatenate([(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b], -1)  # (H, W, 4)
    return (corners * weights).sum(-1).astype(np.float32)


def _cell_gaussian(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """A standard Gaussian value for each integer cell (i, j): splitmix64 of the cell and the
    seed, two 24-bit uniforms, Box-Muller."""
    with np.errstate(over="ignore"):  # the hash wraps around 2**64 on purpose
        z = (i.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (j.view(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
        z ^= np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u1 = ((z >> np.uint64(40)).astype(np.float64) + 0.5) / 2**24
    u2 = ((z & np.uint64(0xFFFFFF)).astype(np.float64) + 0.5) / 2**24
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
