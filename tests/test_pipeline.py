"""Degradation ops declared in YAML: registered, seeded, replayable, validated."""
import pytest
import torch

from vitrestore.config import ConfigError
from vitrestore.ops.blur import disk_kernels, gaussian_kernels, motion_kernels
from vitrestore.ops.pipeline import OPS, apply_pipeline, build_pipeline, sample_pipeline


def smooth_batch(b=3, h=40, w=48):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(6 * xx), 0.5 + 0.4 * torch.cos(5 * yy), (xx + yy) / 2])
    img = base.unsqueeze(0).repeat(b, 1, 1, 1)
    img[:, :, 10:20, 10:30] = 0.9  # an edge for the blurs to soften
    return img


@pytest.mark.parametrize("name", sorted(set(OPS) - {"quantize"}))
def test_every_op_is_deterministic_under_a_seed_and_changes_the_image(name):
    steps = build_pipeline([{"op": name, "p": 1.0}])
    x = smooth_batch()
    a, _ = apply_pipeline(steps, sample_pipeline(steps, torch.Generator().manual_seed(3), tuple(x.shape)), x)
    b, _ = apply_pipeline(steps, sample_pipeline(steps, torch.Generator().manual_seed(3), tuple(x.shape)), x)
    c, _ = apply_pipeline(steps, sample_pipeline(steps, torch.Generator().manual_seed(4), tuple(x.shape)), x)
    assert a.shape == x.shape and torch.equal(a, b)
    assert (a - x).abs().mean() > 1e-3 and not torch.equal(a, c)


def test_probability_selects_a_share_of_the_batch():
    steps = build_pipeline([{"op": "gaussian_noise", "p": 0.5, "sigma_min": 20, "sigma_max": 20}], quantize_bits=0)
    x = smooth_batch(b=64, h=8, w=8)
    y, _ = apply_pipeline(steps, sample_pipeline(steps, torch.Generator().manual_seed(0), tuple(x.shape)), x)
    touched = ((y - x).abs().flatten(1).amax(1) > 0).sum().item()
    assert 20 < touched < 44


def test_holes_report_their_mask():
    steps = build_pipeline([{"op": "holes", "count_min": 2, "count_max": 2, "size_min": 0.2, "size_max": 0.3}], quantize_bits=0)
    x = smooth_batch()
    y, mask = apply_pipeline(steps, sample_pipeline(steps, torch.Generator().manual_seed(1), tuple(x.shape)), x)
    assert mask.shape == (3, 1, 40, 48)
    assert 0.03 < mask.mean() < 0.25
    assert torch.all(y[mask.expand_as(y) > 0] == 0) and torch.equal(y * (1 - mask), x * (1 - mask))


def test_kernels_are_normalised_and_shaped():
    for k in (gaussian_kernels(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0]), 15),
              motion_kernels(torch.tensor([5.0, 11.0]), torch.tensor([0.3, 2.0]), 15),
              disk_kernels(torch.tensor([1.5, 4.0]), 15)):
        assert k.shape == (2, 15, 15)
        assert torch.allclose(k.sum((1, 2)), torch.ones(2), atol=1e-5) and (k >= 0).all()


@pytest.mark.parametrize("spec, where", [
    ([{"op": "sharpen"}], "pipeline[0].op"),
    ([{"op": "jpeg"}, {"op": "jpeg", "qualty_min": 5}], "pipeline[1].qualty_min"),
    ([{"op": "jpeg", "p": 1.5}], "pipeline[0].p"),
    ([{"op": "gaussian_blur", "sigma_max": "big"}], "pipeline[0].sigma_max"),
    (["jpeg"], "pipeline[0]"),
])
def test_bad_pipeline_entries_name_the_entry_and_file(spec, where):
    with pytest.raises(ConfigError) as e:
        build_pipeline(spec, "my.yaml")
    assert where in str(e.value) and "my.yaml" in str(e.value)
