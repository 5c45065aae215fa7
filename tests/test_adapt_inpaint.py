"""`inpaint --adapt` (issue 34, tasks/inpaint_adapt.py): self-inpainting pairs cut into the known
pixels. Tiny models and generated images only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import smooth_image
from vitrestore.engine.adapt import AdaptSettings, Sample, adapt
from vitrestore.engine.runtime import Model
from vitrestore.engine.train import Trainer
from vitrestore.task import CannotAdapt
from vitrestore.tasks import get_task
from vitrestore.tasks import inpaint_adapt


def _model(tiny_cfg) -> Model:
    cfg = tiny_cfg("task=inpaint")
    task = get_task("inpaint").from_config(cfg)
    torch.manual_seed(0)
    g = Trainer(cfg, task, quiet=True).G
    for p in g.head.parameters():  # a residual head at zero would leave nothing to learn quickly
        torch.nn.init.normal_(p, std=0.05)
    return Model(task, g, {}, torch.device("cpu"), tile=0)


def _sample(h: int = 96, w: int = 128, stroke: int = 6) -> Sample:
    img = torch.from_numpy(smooth_image(np.random.default_rng(3), h, w)).permute(2, 0, 1)[None].float() / 255
    mask = torch.zeros(1, 1, h, w)
    mask[..., h // 2 - stroke // 2: h // 2 + stroke - stroke // 2, 10:w - 10] = 1  # a horizontal stroke
    return Sample(img.masked_fill(mask > 0.5, 0), {"mask": mask, "texture": True}, "a.png")


def test_stroke_width_is_measured():
    hole = np.zeros((64, 96), bool)
    hole[20:30, 10:80] = True  # 10 px wide
    lo, hi = inpaint_adapt.stroke_widths(hole)
    assert 8 <= lo <= hi <= 12


def test_pairs_cut_new_holes_into_known_pixels_only(tiny_cfg):
    model = _model(tiny_cfg)
    s = _sample()
    p = model.task.adapt_prepare([s], None)
    b = model.task.adapt_batch(p, torch.Generator().manual_seed(0))
    assert b.loss_weight.sum() > 0
    assert b.cond.shape[1] == 1 and b.input.shape == b.target.shape
    assert (b.loss_weight <= b.cond).all()  # the loss is inside the new holes ...
    assert torch.equal(b.input * (1 - b.cond), b.target * (1 - b.cond))  # ... and what is known is exact
    assert (p.held[0] * s.request["mask"]).sum() == 0  # held-out strokes avoid the user's hole


def test_objective_decreases_and_seeded_runs_are_identical(tiny_cfg):
    torch.set_num_threads(1)
    model = _model(tiny_cfg)
    task = model.task
    s = _sample()
    old_lr = type(task).adapt_lr
    type(task).adapt_lr = 3e-3  # a tiny random network: a big step shows the descent within a few steps
    try:
        runs = [adapt(model, [s], AdaptSettings(steps=40, seed=0), quiet=True) for _ in range(2)]
    finally:
        type(task).adapt_lr = old_lr
    (a, ra), (b, rb) = runs
    assert ra.steps == 40 and ra.loss_last < ra.loss_first
    assert ra.score_adapted < ra.score_base and ra.kept
    assert ra.score_adapted == rb.score_adapted and ra.loss_last == rb.loss_last
    for (n, x), (_, y) in zip(a.generator.state_dict().items(), b.generator.state_dict().items()):
        assert torch.equal(x, y), n
    # the base model is untouched, and the adapted one keeps known pixels exactly
    out = a.run_tensor(s.image, mask=s.request["mask"])
    known = s.request["mask"] < 0.5
    assert torch.equal(out.expand_as(s.image)[known.expand_as(s.image)], s.image[known.expand_as(s.image)])


@pytest.mark.parametrize("cover", ["all", "nearly"])
def test_all_hole_mask_cannot_adapt(tiny_cfg, cover):
    model = _model(tiny_cfg)
    s = _sample()
    s.request["mask"] = torch.ones_like(s.request["mask"])
    if cover == "nearly":
        s.request["mask"][..., :4, :4] = 0
    with pytest.raises(CannotAdapt) as e:
        model.task.adapt_prepare([s], None)
    assert "\n" not in str(e.value)
    _, res = adapt(model, [s], AdaptSettings(steps=2), quiet=True)
    assert not res.kept and res.reason == str(e.value)
