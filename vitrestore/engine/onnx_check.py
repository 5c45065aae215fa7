"""Check an exported generator: ONNX Runtime against PyTorch on the same random input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..nn.generator import Generator
from .nets import ort_reason


def compare_with_torch(generator: Generator, onnx_path: str | Path, size: tuple[int, int] | None = None,
                       seed: int = 0, batches: tuple[int, ...] = (1, 2)) -> tuple[tuple[int, int], float]:
    """((H, W), largest absolute difference) between the file run in ONNX Runtime and the
    generator in PyTorch, on random (B, C, H, W) inputs for each B in `batches` (the batch is
    dynamic: one image and several must both hold), at an odd size above the pad multiple by
    default, so the traced pad and crop are exercised. A run ONNX Runtime refuses is a
    ValueError in one line."""
    import onnxruntime as ort  # noqa: PLC0415

    cfg = generator.cfg
    m = generator.pad_multiple
    h, w = size or (m + m // 2 + 1, 2 * m + 3)
    g = torch.Generator().manual_seed(seed)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for b in batches:
        x = torch.rand(b, cfg.in_channels, h, w, generator=g)
        cond = torch.rand(b, generator.cond_channels, h, w, generator=g) if generator.cond_channels else None
        with torch.no_grad():
            ref = generator.eval().cpu()(x, cond).numpy()
        feed = {"image": x.numpy()}
        if cond is not None:
            feed["cond"] = cond.numpy()
        try:
            out = session.run(None, feed)[0]
        except Exception as exc:  # noqa: BLE001  (ONNX Runtime's errors derive from Exception alone)
            raise ValueError(f"{onnx_path}: ONNX Runtime fails on a batch of {b} at {w}x{h} ({ort_reason(exc)})"
                             ) from None
        if out.shape != ref.shape:
            return (h, w), float("inf")
        worst = max(worst, float(np.abs(out - ref).max()))
    return (h, w), worst
