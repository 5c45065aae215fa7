"""Shared fixtures: tiny configs, generated images, a tiny trained weights file. No test reads
../shared/data or downloads anything."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vitrestore.config import load_config


TINY = {
    "task": "denoise",
    "generator": {"stem_channels": 8, "dims": [8, 16], "heads": [1, 2], "enc_depths": [1, 1], "dec_depths": [1],
                  "window": 4, "mlp_ratio": 1.0},
    "discriminator": {"dim": 16, "patch": 4, "depth": 1, "heads": 2},
    "data": {"crop": 32, "batch": 4, "val_size": 32, "val_limit": 2},
    "train": {"steps": 10, "warmup": 2, "lr": 2e-3, "ema_start": 0, "ema_decay": 0.5, "log_every": 5,
              "val_every": 5, "checkpoint_minutes": 100},
}


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A natural-ish (H, W, 3) uint8 test image: smooth gradients, blobs and a few edges."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 3, 3)
        img[:, :, c] = 0.5 + 0.3 * np.sin(xx / w * fx * np.pi + ph) * np.cos(yy / h * fy * np.pi)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, max(2.0, min(h, w) / 3))
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[m] = rng.uniform(0.1, 0.9, 3)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def stripes(h: int = 80, w: int = 112) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: diagonal two-colour stripes, period 8 px, a texture no
    diffusion fill can carry across a wide hole."""
    y, x = np.mgrid[:h, :w]
    on = ((x + y) // 4) % 2 == 1
    return np.where(on[..., None], [0.9, 0.6, 0.2], [0.1, 0.2, 0.5]).astype(np.float32)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Exported ONNX graphs go to a folder of the test session, never the user's cache."""
    import os

    os.environ["VITRESTORE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(d / f"img{i}.png"), smooth_image(rng, 72, 88)[:, :, ::-1])
    return d


@pytest.fixture
def tiny_cfg(image_dir, tmp_path):
    def make(*overrides: str):
        raw = {**TINY, "data": {**TINY["data"], "train": [str(image_dir)], "val_holdout": 1},
               "train": {**TINY["train"], "out": str(tmp_path / "run")}}
        return load_config(raw=raw, overrides=list(overrides))
    return make


@pytest.fixture(scope="session")
def tiny_weights(image_dir, tmp_path_factory) -> Path:
    """A tiny denoiser trained for a few steps: a real weights file for CLI/API mechanics."""
    from vitrestore.engine.train import Trainer
    from vitrestore.tasks import get_task

    out = tmp_path_factory.mktemp("tinyrun")
    raw = {**TINY, "data": {**TINY["data"], "train": [str(image_dir)]}, "train": {**TINY["train"], "out": str(out)}}
    cfg = load_config(raw=raw)
    trainer = Trainer(cfg, get_task("denoise").from_config(cfg), quiet=True)
    trainer.fit()
    return out / "weights.safetensors"


@pytest.fixture(scope="session")
def tiny_upscale_weights(image_dir, tmp_path_factory) -> Path:
    """A tiny x2 super-resolution model trained for a few steps (mechanics only, not quality)."""
    from vitrestore.engine.train import Trainer
    from vitrestore.tasks import get_task

    out = tmp_path_factory.mktemp("tinyup")
    raw = {**TINY, "task": "upscale", "task_options": {"scale": 2},
           "data": {**TINY["data"], "train": [str(image_dir)]}, "train": {**TINY["train"], "steps": 4, "out": str(out)}}
    cfg = load_config(raw=raw)
    Trainer(cfg, get_task("upscale").from_config(cfg), quiet=True).fit()
    return out / "weights.safetensors"


@pytest.fixture(scope="session")
def tiny_inpaint_weights(image_dir, tmp_path_factory) -> Path:
    """A tiny inpainting model trained for a few steps (mechanics only, not quality)."""
    from vitrestore.engine.train import Trainer
    from vitrestore.tasks import get_task

    out = tmp_path_factory.mktemp("tinyinpaint")
    raw = {**TINY, "task": "inpaint", "data": {**TINY["data"], "train": [str(image_dir)]},
           "train": {**TINY["train"], "steps": 4, "out": str(out)}}
    cfg = load_config(raw=raw)
    Trainer(cfg, get_task("inpaint").from_config(cfg), quiet=True).fit()
    return out / "weights.safetensors"
