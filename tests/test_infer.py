import pytest
import torch

from vitrestore.config import GeneratorConfig
from vitrestore.engine.infer import tile_starts, tiled_forward
from vitrestore.nn.generator import Generator


def test_tile_starts_cover_everything():
    for size, tile, ov in [(100, 32, 8), (64, 64, 8), (65, 64, 16), (10, 64, 8)]:
        starts = tile_starts(size, tile, ov)
        covered = set()
        for s in starts:
            covered |= set(range(s, min(size, s + tile)))
        assert covered == set(range(size))


def test_tiled_equals_untiled_within_tolerance():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(stem_channels=8, dims=(8, 16), heads=(1, 2), enc_depths=(1, 1), dec_depths=(1,),
                                  window=4, mlp_ratio=1.0)).eval()
    torch.nn.init.normal_(g.head[-2].weight, std=0.02)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 150), torch.linspace(0, 1, 190), indexing="ij")
    x = torch.stack([yy, xx, (yy + xx) / 2])[None] + 0.05 * torch.randn(1, 3, 150, 190)
    with torch.no_grad():
        full = g(x)
    tiled = tiled_forward(g, x, None, tile=64, overlap=24)
    assert tiled.shape == full.shape
    diff = (tiled - full).abs()
    assert diff.mean() < 2e-3 and diff.max() < 5e-2, (diff.mean(), diff.max())


def test_tiled_upscale_shape():
    g = Generator(GeneratorConfig(stem_channels=8, dims=(8, 16), heads=(1, 2), enc_depths=(1, 1), dec_depths=(1,),
                                  window=4, mlp_ratio=1.0), scale=2).eval()
    y = tiled_forward(g, torch.rand(1, 3, 70, 45), None, tile=32, overlap=8, scale=2)
    assert y.shape == (1, 3, 140, 90)


def test_several_tiles_per_call_give_the_tiles_one_by_one():
    """Batched tiles (the GPU path): same result, each tile with its own condition."""
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(stem_channels=8, dims=(8, 16), heads=(1, 2), enc_depths=(1, 1), dec_depths=(1,),
                                  window=4, mlp_ratio=1.0), cond_channels=1, scale=2).eval()
    torch.nn.init.normal_(g.head[-2].weight, std=0.05)
    x = torch.rand(2, 3, 70, 101)
    calls = []

    def net(t, c):
        calls.append(t.shape[0])
        return g(t, c)

    def cond(t, sl):  # differs per tile: its position
        return torch.full_like(t[:, :1], sl[0].start / 100 + sl[1].start / 1000)

    one = tiled_forward(net, x, cond, tile=32, overlap=8, scale=2)
    n = len(calls)
    three = tiled_forward(net, x, cond, tile=32, overlap=8, scale=2, tiles_per_call=3)
    assert torch.allclose(one, three, atol=1e-5)
    assert calls[n:] == [6] * (n // 3) + ([2 * (n % 3)] if n % 3 else [])  # B=2 images x 3 tiles per call


def test_ensemble_averages_flips_and_rotations(tiny_weights):
    from vitrestore.tasks import load_model

    x = torch.rand(1, 3, 30, 44)
    one = load_model(tiny_weights, device="cpu").run_tensor(x)
    eight = load_model(tiny_weights, device="cpu", ensemble=8).run_tensor(x)
    assert eight.shape == one.shape and not torch.equal(one, eight)
    assert (eight - one).abs().mean() < 0.05  # the same model, averaged: close to a single pass
    with pytest.raises(ValueError, match="ensemble"):
        load_model(tiny_weights, device="cpu", ensemble=3)
