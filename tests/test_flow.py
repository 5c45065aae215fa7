"""Edge flow and line integral convolution (the stylize task's stroke noise)."""
import torch

from vitrestore.flow import edge_flow, line_integral, stroke_noise


def stripes(h: int, w: int, vertical: bool) -> torch.Tensor:
    """(1, 3, h, w) sine stripes whose edges run vertically (vertical=True) or horizontally."""
    t = torch.arange(w if vertical else h, dtype=torch.float32)
    wave = 0.5 + 0.4 * torch.sin(t / 3)
    img = wave.view(1, 1, 1, w).expand(1, 3, h, w) if vertical else wave.view(1, 1, h, 1).expand(1, 3, h, w)
    return img.contiguous()


def test_flow_runs_along_the_edges():
    flow = edge_flow(stripes(48, 64, vertical=True))[..., 8:-8, 8:-8]
    assert flow.shape[1] == 2
    assert flow[:, 0].abs().max() < 0.05 and flow[:, 1].abs().min() > 0.99  # (dx, dy) = (0, +-1)
    flow = edge_flow(stripes(48, 64, vertical=False))[..., 8:-8, 8:-8]
    assert flow[:, 1].abs().max() < 0.05 and flow[:, 0].abs().min() > 0.99


def test_line_integral_is_a_box_average_along_a_straight_flow():
    noise = torch.randn(1, 1, 20, 40, generator=torch.Generator().manual_seed(1))
    flow = torch.zeros(1, 2, 20, 40)
    flow[:, 0] = 1.0  # straight to the right (and back)
    out = line_integral(noise, flow, 3)
    box = torch.nn.functional.avg_pool1d(noise[0], 7, stride=1)  # (1, 20, 34): columns 3..36
    assert torch.allclose(out[0, :, :, 3:-3], box, atol=1e-5)


def test_stroke_noise_is_seeded_unit_and_streaks_follow_the_edges():
    img = stripes(96, 96, vertical=True)
    a = stroke_noise(img, 8, 2)
    assert a.shape == (1, 1, 96, 96)
    assert torch.equal(a, stroke_noise(img, 8, 2))  # seeded: the same photo, the same strokes
    assert not torch.equal(a, stroke_noise(img, 8, 2, torch.Generator().manual_seed(3)))
    assert abs(float(a.std()) - 1) < 1e-3 and abs(float(a.mean())) < 1e-3

    def corr(x, dy, dx):  # correlation of the map with itself shifted by (dy, dx)
        p, q = x[..., : 96 - dy, : 96 - dx].flatten(), x[..., dy:, dx:].flatten()
        return float(torch.corrcoef(torch.stack([p, q]))[0, 1])

    along, across = corr(a, 6, 0), corr(a, 0, 6)
    assert along > 0.6 and across < 0.2, (along, across)  # streaks run down the vertical edges
    plain = stroke_noise(img, 0, 1)  # no strokes: plain Gaussian noise, no direction
    assert abs(corr(plain, 6, 0)) < 0.1 and abs(corr(plain, 0, 6)) < 0.1
    grain = stroke_noise(img, 0, 3)  # a 3 px grain, no strokes: blobs, unit variance, no direction
    assert abs(float(grain.std()) - 1) < 1e-3 and abs(corr(grain, 6, 0) - corr(grain, 0, 6)) < 0.1
