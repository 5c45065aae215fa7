import math

import pytest
import torch
import torch.nn.functional as F

from vitrestore import losses
from vitrestore.metrics import psnr, ssim


def test_nonsaturating_matches_the_formula():
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    ld, _ = losses.d_loss(real, fake, "nonsaturating")
    expect = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert torch.allclose(ld, expect, atol=1e-5)
    lg, _ = losses.g_adv_loss(fake, "nonsaturating")
    assert torch.allclose(lg, -torch.log(torch.sigmoid(fake)).mean(), atol=1e-5)


def test_hinge_and_wgan():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert math.isclose(float(losses.d_loss(real, fake, "hinge")[0]), (0 + 0.5) / 2 + (0 + 1) / 2)
    assert math.isclose(float(losses.d_loss(real, fake, "wgan-gp")[0]), -1.0 - 1.25)
    with pytest.raises(ValueError, match="unknown adversarial"):
        losses.d_loss(real, fake, "lsgan")


def test_pixel_and_msssim():
    x = torch.rand(2, 3, 64, 64)
    assert float(losses.pixel_loss(x, x, "l1")[0]) == 0
    assert float(losses.ms_ssim_loss(x, x)[0]) < 1e-5
    assert float(losses.ms_ssim_loss(x, torch.rand_like(x))[0]) > 0.5
    w = torch.zeros(2, 1, 64, 64)
    w[..., :8, :8] = 1
    y = x.clone()
    y[..., 32:, 32:] = 0
    assert float(losses.pixel_loss(x, y, "l1", weight=w)[0]) == 0


def test_r1_penalty_is_gradient_norm():
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    pen, _ = losses.r1_penalty((3 * x).sum((1, 2, 3)), x)
    assert math.isclose(float(pen), 9 * 48, rel_tol=1e-5)


def test_lpips_without_local_weights_gives_one_notice_and_zero(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("VITRESTORE_LPIPS_BACKBONE", str(tmp_path / "missing.pth"))
    losses._NOTICE_SHOWN.clear()
    a, b = losses.LPIPSLoss("alex"), losses.LPIPSLoss("alex")
    err = capsys.readouterr().err
    assert err.count("LPIPS skipped") == 1
    assert not a.available and not b.available
    val, logs = a(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    assert float(val) == 0 and logs == {}


def test_metrics_psnr_ssim():
    x = torch.rand(1, 3, 32, 32)
    assert psnr(x, x) > 90 and math.isclose(ssim(x, x), 1.0, abs_tol=1e-9)
    y = (x + 10 / 255).clamp(0, 1)
    assert 27 < psnr(x, y) < 29.5
    assert psnr(x, y, border=4, y_channel=True) > 27
    assert ssim(x, F.avg_pool2d(x, 3, 1, 1)) < 0.9
