"""Dense optical flow between two frames of a clip, on NumPy images (OpenCV's DIS), and moving an
image by it: what steady frames (vitrestore/steady.py) and pixel tracks (vitrestore/motion.py)
share.

    flow = input_flow(current, previous)    # (H, W, 2) float32: where each pixel of current was in previous
    moved = remap(previous_image, flow)     # previous_image carried onto current's pixels
    diff = mismatch(current, moved, 1.5)    # (H, W) float32: how far they differ, in levels
"""
from __future__ import annotations

import cv2
import numpy as np


def grey(a: np.ndarray) -> np.ndarray:
    """(H, W) of an (H, W, C) RGB(A) or grey image."""
    if a.ndim == 3 and a.shape[2] >= 3:
        return cv2.cvtColor(np.ascontiguousarray(a[:, :, :3]), cv2.COLOR_RGB2GRAY)
    return a[..., 0] if a.ndim == 3 else a


def blur(a: np.ndarray) -> np.ndarray:
    """A light Gaussian blur (sigma 1.5 px): flow and comparisons not led by noise or grain."""
    return cv2.GaussianBlur(a, (0, 0), 1.5)


def input_flow(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: where each pixel of `current` was in `previous` (DIS on blurred grey)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(blur(grey(current)), blur(grey(previous)), None)


def remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` (H, W, ...) sampled at each pixel plus its flow (bilinear; edges repeated)."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def mismatch(current: np.ndarray, moved: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32: how many levels `current` and `moved` (an earlier frame moved onto it,
    float32) differ, each lightly blurred first, channels averaged, the difference blurred by
    `sigma` px: where the flow explains the change and where it does not."""
    diff = np.abs(blur(current.astype(np.float32)) - blur(moved))
    if diff.ndim == 3:
        diff = diff.mean(axis=2)
    return cv2.GaussianBlur(diff, (0, 0), sigma)
