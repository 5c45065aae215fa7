"""Inpainting task: seeded mask generators cover their area ranges, known pixels are kept
exactly, a few training steps lower the loss inside the hole."""
import numpy as np
import pytest
import torch

import vitrestore.tasks  # noqa: F401
from vitrestore.data import ImageBank, list_images
from vitrestore.engine.train import Trainer
from vitrestore.masks import Boxes, Large, MaskMix, Scratches, Strokes
from vitrestore.registry import get_task
from vitrestore.tasks.model import Model


@pytest.mark.parametrize("make, lo, hi", [
    (Strokes(1, 5, 0.01, 0.03), 0.002, 0.25),
    (Strokes(1, 4, 0.04, 0.1), 0.01, 0.6),
    (Large(), 0.15, 0.75),
    (Boxes(), 0.005, 0.5),
    (Scratches(), 0.0005, 0.1),
])
def test_mask_generators_are_seeded_and_cover_their_range(make, lo, hi):
    covers = []
    for seed in range(20):
        a = make(96, 128, torch.Generator().manual_seed(seed))
        b = make(96, 128, torch.Generator().manual_seed(seed))
        assert a.shape == (96, 128) and set(np.unique(a)) <= {0.0, 1.0} and np.array_equal(a, b)
        covers.append(a.mean())
    assert lo <= np.mean(covers) <= hi and max(covers) > 0


def test_large_masks_reach_about_forty_percent():
    covers = [Large(0.35, 0.45)(128, 128, torch.Generator().manual_seed(s)).mean() for s in range(20)]
    assert 0.3 < np.mean(covers) < 0.6


def test_mixture_never_returns_an_empty_mask():
    mix = MaskMix(scratches=1.0, thin=0, thick=0, large=0, boxes=0)
    assert all(mix(16, 16, torch.Generator().manual_seed(s)).max() == 1 for s in range(30))


def test_known_pixels_are_kept_exactly(tiny_cfg):
    cfg = tiny_cfg("task=inpaint")
    task = get_task("inpaint").from_config(cfg)
    t = Trainer(cfg, task, quiet=True)
    model = Model(task, t.G, {}, torch.device("cpu"), tile=32, overlap=8)
    img = (torch.rand(1, 3, 40, 52) * 255).round().to(torch.uint8)
    mask = torch.zeros(1, 1, 40, 52)
    mask[..., 10:25, 5:30] = 1
    out = model.run_tensor(img, mask=mask)
    keep = mask.expand_as(out) == 0
    assert torch.equal((out * 255).round()[keep], img.float()[keep])
    with pytest.raises(ValueError, match="mask"):
        model.run_tensor(img)


def test_training_lowers_the_hole_loss(tiny_cfg, image_dir):
    cfg = tiny_cfg("task=inpaint", "train.lr=3e-3", "train.warmup=1")
    t = Trainer(cfg, get_task("inpaint").from_config(cfg), quiet=True)
    bank = ImageBank(list_images(image_dir), min_size=32)

    def hole_loss():
        total = 0.0
        for s in range(3):
            b = t.stream(bank)[1000 + s]
            with torch.no_grad():
                out = t.G(b.input, b.cond)
            total += float(((out - b.target).abs() * b.cond).sum() / b.cond.sum().clamp_min(1))
        return total

    before = hole_loss()
    for _ in range(60):
        t.train_step(bank)
    assert hole_loss() < 0.8 * before
