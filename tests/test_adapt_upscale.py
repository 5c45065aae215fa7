"""`upscale --adapt` (tasks/super_resolution_adapt.py): the downscaler pick, the internal pairs,
CannotAdapt on images too small to shrink again, the objective falling, seeded repeatability
(tiny model, generated images)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import smooth_image
from vitrestore.config import load_config
from vitrestore.engine.adapt import AdaptSettings, Sample, adapt
from vitrestore.ops.degrade import quantize
from vitrestore.ops.downscale import downscale
from vitrestore.task import CannotAdapt
from vitrestore.tasks import get_task, load_model, super_resolution_adapt as sra


def _image(seed: int, h: int, w: int) -> torch.Tensor:
    a = smooth_image(np.random.default_rng(seed), h, w)
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def _task(scale: int):
    return get_task("upscale").from_config(load_config(raw={"task": "upscale", "task_options": {"scale": scale}}))


@pytest.fixture
def tiny(tiny_upscale_weights):
    torch.set_num_threads(1)
    return load_model(tiny_upscale_weights, device="cpu", backend="torch", precision="fp32", tile=0)


@pytest.mark.parametrize("name", ["cv2_area", "cv2_linear", "matlab_bicubic"])
def test_pick_finds_the_downscaler_a_faithful_output_shrinks_back_by(name):
    hr = [_image(k, 96, 128) for k in range(2)]
    lr = [quantize(downscale(x.double(), (24, 32), name)).float() for x in hr]
    picked, errors = sra.pick_downscaler(lr, hr)
    assert picked == name, errors


def test_internal_pairs_are_the_inputs_shrunk_again():
    task = _task(2)
    samples = [Sample(_image(k, 64, 80)) for k in range(2)]
    p = task.adapt_prepare(samples, lambda x: F.interpolate(x, scale_factor=2, mode="bicubic").clamp(0, 1))
    assert p.lr[0].shape == (1, 3, 32, 40) and p.hr[0].shape == (1, 3, 64, 80)
    assert torch.equal(p.lr[0], quantize(downscale(p.hr[0].double(), (32, 40), p.downscaler)).float())
    b = task.adapt_batch(p, torch.Generator().manual_seed(0))
    n = sra.PAIRS + sra.PULLS
    assert b.input.shape == (n, 3, p.patch, p.patch) and b.target.shape == (n, 3, 2 * p.patch, 2 * p.patch)
    assert all(r + int(32 * sra.HOLD_OUT) == 32 for r in p.train_rows)  # held-out rows never trained on


def test_too_small_to_shrink_again_cannot_adapt():
    with pytest.raises(CannotAdapt, match="too small"):
        _task(4).adapt_prepare([Sample(_image(0, 40, 44))], lambda x: F.interpolate(x, scale_factor=4))


def test_adapting_lowers_the_objective_and_is_seeded(tiny):
    tiny.task.adapt_lr = 2e-3  # the tiny model is far from trained: a bigger step shows the fall in few steps
    samples = [Sample(_image(k, 64, 72)) for k in range(3)]
    settings = AdaptSettings(steps=25, seed=3)
    first, res = adapt(tiny, samples, settings, quiet=True)
    assert res.kept and res.score_adapted < res.score_base, res.line()
    assert res.loss_last < res.loss_first
    again, res2 = adapt(tiny, samples, settings, quiet=True)
    assert res2.score_adapted == res.score_adapted and res2.loss_last == res.loss_last
    for (k, a), b in zip(first.generator.state_dict().items(), again.generator.state_dict().values()):
        assert torch.equal(a, b), k
