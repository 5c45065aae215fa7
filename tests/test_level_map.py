"""The denoiser's level map with the clipping at black and white modelled
(vitrestore/ops/clipped.py, task_options.level_map: clipped in tasks/denoise.py)."""
import pytest
import torch

from vitrestore.ops.clipped import clipped_std, local_mean
from vitrestore.ops.degrade import quantize
from vitrestore.tasks import get_task


@pytest.mark.parametrize("mean", [0.0, 0.03, 0.5, 0.98, 1.0])
@pytest.mark.parametrize("sigma", [5 / 255, 25 / 255, 50 / 255])
def test_clipped_std_is_the_std_of_clipped_gaussian_samples(mean, sigma):
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    measured = float((mean + sigma * z).clamp(0, 1).std())
    assert clipped_std(torch.tensor(mean), sigma).item() == pytest.approx(measured, rel=0.01)


def test_clipped_std_keeps_sigma_away_from_the_ends_and_is_zero_without_noise():
    mid = clipped_std(torch.full((3,), 0.5), torch.tensor([0.0, 10 / 255, 20 / 255]))
    assert mid[0] == 0 and mid[1:].tolist() == pytest.approx([10 / 255, 20 / 255], rel=1e-4)
    # at black or white, a little more than half the noise survives
    assert clipped_std(torch.tensor(0.0), 0.1).item() == pytest.approx(0.1 * 0.5838, rel=1e-3)


def test_local_mean_is_a_box_mean_that_keeps_the_shape():
    x = torch.rand(2, 3, 9, 7)
    m = local_mean(x, 5)
    assert m.shape == x.shape
    assert m[0, 1, 4, 3].item() == pytest.approx(x[0, 1, 2:7, 1:6].mean().item(), abs=1e-6)
    assert local_mean(torch.rand(1, 1, 2, 2)).shape == (1, 1, 2, 2)  # too small to reflect: replicated


def _scene() -> torch.Tensor:
    """Clean images (16, 3, 32, 32): the left half black, the right half mid-grey."""
    clean = torch.full((16, 3, 32, 32), 0.5)
    clean[..., :16] = 0.0
    return clean


def test_clipped_map_lowers_the_level_where_the_noise_met_black(tiny_cfg):
    base = ["task=denoise", "task_options.poisson_prob=0", "task_options.known_sigma_prob=1",
            "task_options.sigma_min=20", "task_options.sigma_max=40"]
    constant = get_task("denoise").from_config(tiny_cfg(*base))
    clipped = get_task("denoise").from_config(tiny_cfg(*base, "task_options.level_map=clipped"))
    clean = _scene()
    a = constant.degrade(clean, torch.Generator().manual_seed(5))
    b = clipped.degrade(clean, torch.Generator().manual_seed(5))
    assert torch.equal(a.input, b.input) and torch.equal(a.cond[:, 1], b.cond[:, 1])  # same draws
    sigma = a.cond[:, 0, 0, 0]  # (B,) the constant map: the level drawn
    dark, grey = b.cond[:, 0, 8:24, 2:12].mean((1, 2)), b.cond[:, 0, 8:24, 20:30].mean((1, 2))
    assert torch.allclose(grey, sigma, rtol=0.03)  # mid-grey keeps the full level
    assert ((dark / sigma) < 0.75).all() and ((dark / sigma) > 0.5).all()  # at black a little over half
    # why: the file shows less noise in the dark half than the level drawn (the map, taken on the
    # noisy file's local mean, which clipping lifts above black, sits between the two)
    seen = (b.input[..., 2:30, 2:12] - clean[..., 2:30, 2:12]).flatten(1).std(1) * 255 / 50
    assert (seen < 0.7 * sigma).all() and (seen < dark).all()


def test_clipped_map_at_inference_is_the_training_map_of_the_same_file(tiny_cfg):
    task = get_task("denoise").from_config(tiny_cfg("task=denoise", "task_options.poisson_prob=0",
                                                    "task_options.known_sigma_prob=1", "task_options.sigma_min=25",
                                                    "task_options.sigma_max=25", "task_options.level_map=clipped"))
    batch = task.degrade(_scene(), torch.Generator().manual_seed(6))
    told = task.condition(batch.input, sigma=25)
    assert torch.allclose(told, batch.cond, atol=1e-5)
    blind = task.condition(batch.input)
    assert blind.abs().sum() == 0


def test_float_images_keep_the_plain_level_and_blind_images_none(tiny_cfg):
    task = get_task("denoise").from_config(tiny_cfg("task=denoise", "task_options.poisson_prob=0.3",
                                                    "task_options.known_sigma_prob=0.6", "task_options.paper_prob=0.5",
                                                    "task_options.level_map=clipped"))
    clean = quantize(_scene().repeat(4, 1, 1, 1))  # 64 images
    batch = task.degrade(clean, torch.Generator().manual_seed(7))
    known = batch.cond[:, 1, 0, 0] > 0
    floats = torch.tensor([bool((x * 255 - (x * 255).round()).abs().max() > 1e-3) for x in batch.input])
    assert (known & floats).any() and (known & ~floats).any() and (~known).any()
    level = batch.cond[:, 0]
    flat = level.flatten(1).std(1) < 1e-6  # (B,) a constant map
    assert flat[known & floats].all() and not flat[known & ~floats].any()
    assert level[~known].abs().sum() == 0
