"""Check an exported generator: ONNX Runtime against PyTorch on the same random input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..nn.generator import Generator


def compare_with_torch(generator: Generator, onnx_path: str | Path, size: tuple[int, int] | None = None,
                       seed: int = 0) -> tuple[tuple[int, int], float]:
    """((H, W), largest absolute difference) between the file run in ONNX Runtime and the
    generator in PyTorch, on one random (1, C, H, W) input (default: an odd size above the pad
    multiple, so the traced pad and crop are exercised)."""
    import onnxruntime as ort  # noqa: PLC0415

    cfg = generator.cfg
    m = generator.multiple
    h, w = size or (m + m // 2 + 1, 2 * m + 3)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, cfg.in_channels, h, w, generator=g)
    cond = torch.rand(1, cfg.cond_channels, h, w, generator=g) if cfg.cond_channels else None
    with torch.no_grad():
        ref = generator.eval().cpu()(x, cond).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy()}
    if cond is not None:
        feed["cond"] = cond.numpy()
    out = session.run(None, feed)[0]
    if out.shape != ref.shape:
        return (h, w), float("inf")
    return (h, w), float(np.abs(out - ref).max())
