import torch

from vitrestore.ops.degrade import JPEG, GaussianNoise, PoissonGaussianNoise
from vitrestore.tasks import get_task


def test_ops_replay_exactly_from_their_params():
    x = torch.rand(3, 3, 32, 32)
    for op in (GaussianNoise(0, 50), PoissonGaussianNoise(), JPEG(50, 90)):
        p1 = op.sample(torch.Generator().manual_seed(5), x.shape)
        p2 = op.sample(torch.Generator().manual_seed(5), x.shape)
        assert torch.equal(op.apply(x, p1), op.apply(x, p2))
        p3 = op.sample(torch.Generator().manual_seed(6), x.shape)
        assert not torch.equal(op.apply(x, p1), op.apply(x, p3))


def test_gaussian_noise_level():
    x = torch.full((2, 3, 128, 128), 0.5)
    op = GaussianNoise(25, 25)
    y = op.apply(x, op.sample(torch.Generator().manual_seed(0), x.shape))
    assert abs(float((y - x).std()) * 255 - 25) < 0.5


def test_denoise_degradation_is_seeded_and_conditioned():
    task = get_task("denoise")()
    x = torch.rand(8, 3, 32, 32)
    a = task.degrade(x, torch.Generator().manual_seed(1))
    b = task.degrade(x, torch.Generator().manual_seed(1))
    assert torch.equal(a.input, b.input) and torch.equal(a.cond, b.cond)
    assert a.cond.shape == (8, 2, 32, 32)
    known = a.cond[:, 1, 0, 0] == 1
    # where the level is given, the map holds sigma/50 and matches the residual's std
    for i in known.nonzero().flatten().tolist():
        sigma = float(a.cond[i, 0, 0, 0]) * 50
        assert abs(float((a.input[i] - x[i]).std()) * 255 - sigma) < 0.15 * sigma + 1
    blind = task.condition(x)
    assert float(blind.abs().sum()) == 0
    given = task.condition(x, sigma=25)
    assert torch.allclose(given[:, 0], torch.full_like(given[:, 0], 0.5)) and bool((given[:, 1] == 1).all())
