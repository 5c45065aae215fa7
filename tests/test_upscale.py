"""Super-resolution: exact output sizes, tiling, MATLAB-compatible bicubic, seeded degradations,
and the `upscale` command's options (mechanics with a tiny model)."""
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import smooth_image
from vitrestore.cli import main
from vitrestore.config import ConfigError, GeneratorConfig, load_config
from vitrestore.engine.infer import tiled_forward
from vitrestore.io.images import read_image
from vitrestore.nn.generator import Generator
from vitrestore.ops.resize import imresize, resize_matrix
from vitrestore.tasks import get_task

SMALL = dict(stem_channels=8, dims=(8, 16), heads=(1, 2), enc_depths=(1, 1), dec_depths=(1,), window=4, mlp_ratio=1.0)


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


@pytest.mark.parametrize("scale, stride", [(2, 2), (4, 1), (3, 2)])
@pytest.mark.parametrize("h, w", [(13, 17), (31, 8), (40, 40)])
def test_output_is_exactly_scale_times_input(scale, stride, h, w):
    g = Generator(GeneratorConfig(**SMALL, patch_stride=stride), scale=scale).eval()
    with torch.no_grad():
        assert g(torch.rand(1, 3, h, w)).shape == (1, 3, scale * h, scale * w)


def test_tiled_equals_untiled_for_upscaling():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(**SMALL), scale=2).eval()
    for p in g.head.parameters():  # a non-trivial head (it starts at zero)
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(1, 3, 70, 90)
    with torch.no_grad():
        full = g(x)
        tiled = tiled_forward(g, x, None, tile=48, overlap=16, scale=2)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().mean() < 0.01


def test_imresize_matches_pillow_bicubic_away_from_borders():
    x = torch.from_numpy(np.random.default_rng(0).random((120, 168)).astype(np.float32))
    for scale in (0.5, 0.25, 2.0):
        ours = imresize(x[None, None].double(), scale)[0, 0].numpy()
        size = (round(168 * scale), round(120 * scale))
        ref = np.asarray(Image.fromarray(x.numpy(), "F").resize(size, Image.BICUBIC))
        m = 3  # output pixels whose kernel reaches the border: Pillow clips it there, MATLAB mirrors
        assert np.abs(ours[m:-m, m:-m] - ref[m:-m, m:-m]).max() < 1e-4, scale


def test_resize_rows_sum_to_one_and_constant_stays_constant():
    m = resize_matrix(37, 10, 10 / 37)
    assert torch.allclose(m.sum(1), torch.ones(10, dtype=m.dtype))
    assert torch.allclose(imresize(torch.full((1, 3, 37, 41), 0.4), 0.25), torch.tensor(0.4), atol=1e-6)


@pytest.mark.parametrize("degradation", ["classic", "real"])
def test_degradations_are_seeded_and_sized(degradation):
    cfg = load_config(raw={"task": "upscale", "task_options": {"scale": 4, "degradation": degradation}})
    task = get_task("upscale").from_config(cfg)
    clean = torch.rand(3, 3, 64, 64)
    a = task.degrade(clean, torch.Generator().manual_seed(5))
    b = task.degrade(clean, torch.Generator().manual_seed(5))
    c = task.degrade(clean, torch.Generator().manual_seed(6))
    assert a.input.shape == (3, 3, 16, 16) and a.target.shape == (3, 3, 64, 64)
    assert torch.equal(a.input, b.input)
    assert torch.equal(a.input * 255, (a.input * 255).round())  # 8-bit levels, like a saved file
    assert not torch.equal(a.input, c.input)  # real: random damage; classic: another downscaler per image


def test_classic_paper_protocol_is_matlab_bicubic():
    cfg = load_config(raw={"task": "upscale", "task_options": {"scale": 4, "downscalers": ["matlab_bicubic"]}})
    task = get_task("upscale").from_config(cfg)
    clean = torch.rand(3, 3, 64, 64)
    a = task.degrade(clean, torch.Generator().manual_seed(5))
    assert torch.allclose(a.input, (imresize(clean.double(), 0.25).clamp(0, 1) * 255).round().float() / 255)


def test_unknown_downscaler_is_a_config_error():
    with pytest.raises(ConfigError, match="downscalers.*nearest"):
        get_task("upscale").from_config(load_config(raw={"task": "upscale",
                                                         "task_options": {"downscalers": ["nearest"]}}))


def test_cli_sizes_alpha_gray_16bit_and_outscale(tmp_path, tiny_upscale_weights):
    rgba = np.dstack([smooth_image(np.random.default_rng(1), 21, 33), np.full((21, 33), 200, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba[:, :, [2, 1, 0, 3]])
    gray16 = (smooth_image(np.random.default_rng(2), 19, 25)[:, :, 0].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "g.png"), gray16)
    code, out = run("upscale", tmp_path / "a.png", tmp_path / "g.png", "--model", tiny_upscale_weights, "-q")
    assert code == 0, out
    a2 = read_image(tmp_path / "a_x2.png").pixels
    assert a2.shape == (42, 66, 4) and np.abs(a2[:, :, 3].astype(int) - 200).max() <= 1  # alpha kept
    g2 = read_image(tmp_path / "g_x2.png").pixels
    assert g2.shape == (38, 50, 1) and g2.dtype == np.uint16
    code, out = run("upscale", tmp_path / "a.png", "--model", tiny_upscale_weights, "--outscale", "3", "-q")
    assert code == 0, out
    assert read_image(tmp_path / "a_x3.png").pixels.shape == (63, 99, 4)


def test_cli_refuses_wrong_scale_and_non_sr_models(tmp_path, tiny_upscale_weights, tiny_weights):
    cv2.imwrite(str(tmp_path / "p.png"), smooth_image(np.random.default_rng(3), 20, 20))
    code, out = run("upscale", tmp_path / "p.png", "--model", tiny_upscale_weights, "--scale", "4")
    assert code != 0 and "x2, not x4" in out
    code, out = run("upscale", tmp_path / "p.png", "--model", tiny_weights)
    assert code != 0 and "not a super-resolution model" in out
    code, out = run("upscale", tmp_path / "p.png", "--model", "real", "--scale", "2")
    assert code != 0 and "x4 only" in out


def edgy_image(seed: int, h: int, w: int) -> np.ndarray:
    """smooth_image plus hard edges (rectangles, lines, text), drawn at 2x and area-downscaled
    so the edges are antialiased like a photo's."""
    rng = np.random.default_rng(seed)
    img = np.ascontiguousarray(smooth_image(rng, 2 * h, 2 * w))
    for _ in range(4):
        y, x = int(rng.integers(0, 2 * h - 40)), int(rng.integers(0, 2 * w - 40))
        cv2.rectangle(img, (x, y), (x + 40, y + 28), rng.integers(0, 255, 3).tolist(), -1)
    for i in range(5):
        cv2.line(img, (16 + 24 * i, 8), (60 + 30 * i, 2 * h - 8), (20, 20, 20), 3, cv2.LINE_AA)
    cv2.putText(img, "Vit 42", (w // 2, h), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (250, 250, 240), 5, cv2.LINE_AA)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


@pytest.mark.slow  # shipped models
def test_cli_shipped_x4_beats_bicubic(tmp_path):
    """`vitrestore upscale lr.png --scale 4` with no --model (the shipped classic x4) against the
    ground truth, bicubic as the baseline (the LR made by MATLAB-compatible bicubic, like Set5)."""
    from vitrestore.metrics import psnr

    hr = torch.from_numpy(edgy_image(0, 96, 128)).permute(2, 0, 1)[None].double() / 255
    lr = (imresize(hr, 0.25).clamp(0, 1) * 255).round()
    lr_rgb = lr[0].permute(1, 2, 0).numpy().astype(np.uint8)
    cv2.imwrite(str(tmp_path / "lr.png"), lr_rgb[:, :, ::-1])
    code, out = run("upscale", tmp_path / "lr.png", "--scale", "4", "-q")
    assert code == 0, out
    sr = cv2.imread(str(tmp_path / "lr_x4.png"))[:, :, ::-1]
    assert sr.shape == (96, 128, 3)
    sr = torch.from_numpy(np.ascontiguousarray(sr)).permute(2, 0, 1)[None].float() / 255
    bic = imresize(lr / 255, 4).clamp(0, 1).float()
    ours, base = psnr(sr, hr.float(), border=4, y_channel=True), psnr(bic, hr.float(), border=4, y_channel=True)
    assert ours > base + 1.5, (ours, base)  # measured: +2.3 dB


@pytest.mark.slow  # shipped models
def test_cli_shipped_real_model_runs_and_sizes(tmp_path):
    img = edgy_image(1, 24, 36)
    noisy = np.clip(img + np.random.default_rng(1).normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "n.jpg"), noisy[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 40])
    code, out = run("upscale", tmp_path / "n.jpg", "--model", "real", "-q")
    assert code == 0, out
    assert cv2.imread(str(tmp_path / "n_x4.jpg")).shape == (96, 144, 3)
