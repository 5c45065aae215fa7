"""Steady frames for clips (issue 33), no training: each processed frame is blended with the
previous processed frame, warped onto it by optical flow, wherever the two agree.

    steady = Steady()
    out_t = steady(out_prev, out_t)      # (H, W, C) uint8 each; out_prev None at a clip's start

The flow (OpenCV's DIS, on the processed frames' grey: they are cleaner than the noisy inputs)
carries the previous output onto this frame; the weight of the warped previous output is
`strength` where the two match and falls to 0 where they differ by more than `tolerance` levels
(motion the flow missed, an occlusion, a cut), so moving content is never smeared. Two frames
and nothing else decide a frame, so a clip resumed mid-way (vitrestore/batch/clip.py) needs only
the frame before its first one processed again to give the same frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Steady:
    strength: float = 0.5  # the warped previous output's weight where the frames agree
    tolerance: float = 12.0  # levels (0-255) of difference at which the weight has fallen to ~1/e

    def __call__(self, previous: np.ndarray | None, current: np.ndarray) -> np.ndarray:
        if previous is None or previous.shape != current.shape or self.strength <= 0:
            return current
        warped = warp_onto(previous, current)
        cur = current.astype(np.float32)
        diff = np.abs(cur - warped).mean(axis=2) if cur.ndim == 3 else np.abs(cur - warped)
        diff = cv2.GaussianBlur(diff, (0, 0), 1.5)  # a pixel's agreement judged with its neighbours'
        weight = self.strength * np.exp(-((diff / self.tolerance) ** 2))  # (H, W)
        if cur.ndim == 3:
            weight = weight[..., None]
        out = cur + weight * (warped - cur)
        return np.clip(out + 0.5, 0, 255).astype(current.dtype) if current.dtype == np.uint8 else out.astype(current.dtype)


def warp_onto(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """`previous` (H, W, C) moved onto `current` by the DIS flow from current to previous, float32."""
    grey = lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 and a.shape[2] == 3 else a[..., 0] if a.ndim == 3 else a  # noqa: E731
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(grey(current), grey(previous), None)  # (H, W, 2): where each pixel of current was
    h, w = current.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(previous.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
