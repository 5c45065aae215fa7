"""Steady frames for clips (issue 33), no training: each processed frame is blended with the
processed frames before it, carried onto it by optical flow, wherever the frames say the scene
is unchanged. The flow and the match are judged on the inputs or on the outputs (`judge`: the
CLI takes the task's `steady_judge`, "output" unless the task says otherwise; stylize judges its
inputs).

    steady = Steady(window=2)
    shown_t = steady([(in_t-2, out_t-2), (in_t-1, out_t-1)], (in_t, out_t))   # (H, W, C) uint8 each

The flow (OpenCV's DIS, on the judged frames' grey, lightly blurred against noise) says where each
pixel of this frame was in each earlier frame; that frame's output moved by it joins the
average with the weight 1 where the moved earlier frame matches this one, falling to none
where they differ by more than `tolerance` levels (motion the flow missed, an occlusion, a cut). What the model did
differently to the same content (a stylised stroke, a denoised grain) is what gets evened out;
moving content is never smeared. An output larger than its input (an upscale) gets the flow
scaled up. `window` + 1 frames decide a frame, so a clip resumed mid-way (vitrestore/batch/clip.py)
processes the `window` frames before its first one again and gives the same frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .optical_flow import input_flow, mismatch, remap

Pair = tuple[np.ndarray, np.ndarray]  # (input frame, output frame), each (H, W, C) uint8


@dataclass(frozen=True)
class Steady:
    window: int = 2  # previous frames averaged in (0: off); a resumed clip processes this many again
    tolerance: float = 12.0  # levels (0-255) of input difference at which a frame's weight has fallen to ~1/e
    judge: str = "input"  # the frames whose flow and agreement decide: "input", or "output" where the
    # model's output is the cleaner picture of the scene (denoise, upscale); stylize must judge its inputs

    def __call__(self, previous: list[Pair], current: Pair) -> np.ndarray:
        """This frame's output averaged with the previous outputs (newest last in `previous`),
        each moved onto it by the input's flow and weighed by how well its moved input matches."""
        cur_in, cur_out = current
        usable = [p for p in previous[-self.window:] if self.window > 0 and p[0].shape == cur_in.shape
                  and p[1].shape == cur_out.shape]
        if not usable:
            return cur_out
        oh, ow = cur_out.shape[:2]
        total = cur_out.astype(np.float32)
        weights = np.ones((oh, ow), np.float32)
        small = lambda x: cv2.resize(x, cur_in.shape[1::-1], interpolation=cv2.INTER_AREA)  # noqa: E731
        a = small(cur_out) if self.judge == "output" else cur_in  # the outputs at the input's size, or the inputs
        for prev_in, prev_out in usable:
            b = small(prev_out) if self.judge == "output" else prev_in
            flow = input_flow(a, b)  # (h, w, 2) at the input's size: where each pixel was in the earlier frame
            moved = remap(b.astype(np.float32), flow)
            weight = np.exp(-((mismatch(a, moved, 1.5) / self.tolerance) ** 2))  # (h, w)
            if (oh, ow) != flow.shape[:2]:  # an upscale: the flow and the weight at the output's size
                sy, sx = oh / flow.shape[0], ow / flow.shape[1]
                flow = cv2.resize(flow, (ow, oh), interpolation=cv2.INTER_LINEAR) * np.array([sx, sy], np.float32)
                weight = cv2.resize(weight, (ow, oh), interpolation=cv2.INTER_LINEAR)
            moved_out = remap(prev_out.astype(np.float32), flow)
            total += (weight[..., None] if total.ndim == 3 else weight) * moved_out
            weights += weight
        out = total / (weights[..., None] if total.ndim == 3 else weights)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
