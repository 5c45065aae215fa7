"""Degradations end as files do: the quantize step, the processed-camera noise model, the
correlated-noise variants, the real downscalers, and every task's training inputs on 8-bit
levels."""
import pytest
import torch

from test_stylize import STYLE, painting
from vitrestore.config import ConfigError
from vitrestore.ops.camera import CameraNoise, demosaic, mosaic
from vitrestore.ops.degrade import CorrelatedNoise, Quantize, quantize
from vitrestore.ops.downscale import DOWNSCALERS, Downscale, downscale
from vitrestore.ops.pipeline import build_pipeline
from vitrestore.ops.resize import imresize
from vitrestore.tasks import TASKS, get_task


def on_levels(x: torch.Tensor, bits: int = 8) -> bool:
    peak = 2**bits - 1
    return bool(torch.equal(x * peak, (x * peak).round()) and x.min() >= 0 and x.max() <= 1)


def flat(value: float, size: int = 64, b: int = 2) -> torch.Tensor:
    return torch.full((b, 3, size, size), value)


def test_quantize_clips_and_rounds_to_the_file_depth():
    x = torch.tensor([-0.3, 0.0, 0.5, 0.50001, 1.2]).view(1, 1, 1, 5)
    assert torch.equal(quantize(x), torch.tensor([0.0, 0.0, 128 / 255, 128 / 255, 1.0]).view(1, 1, 1, 5))
    y = torch.rand(2, 3, 5, 7)
    assert on_levels(quantize(y)) and not on_levels(quantize(y, 16))
    assert on_levels(Quantize(16).apply(y), 16) and (Quantize(16).apply(y) - y).abs().max() <= 0.5 / 65535 + 1e-7
    with pytest.raises(ValueError, match="bits"):
        Quantize(12)


def test_restore_pipelines_end_with_quantize_unless_told_not_to():
    spec = [{"op": "gaussian_noise", "p": 1.0, "sigma_max": 10}]
    assert [s.name for s in build_pipeline(spec)] == ["gaussian_noise", "quantize"]
    assert [s.name for s in build_pipeline(spec + [{"op": "quantize", "bits": 16}])][-2:] == ["gaussian_noise", "quantize"]
    assert [s.name for s in build_pipeline(spec, quantize_bits=0)] == ["gaussian_noise"]
    with pytest.raises(ConfigError, match=r"my.yaml: 'task_options.pipeline\[0\]': quantize bits"):
        build_pipeline([{"op": "quantize", "bits": 3}], "my.yaml")
    with pytest.raises(ConfigError, match="task_options.quantize"):
        get_task("restore")({"pipeline": spec, "quantize": 4})


def _camera(x, seed=0, **kw):
    op = CameraNoise(**kw)
    return op.apply(x, op.sample(torch.Generator().manual_seed(seed), tuple(x.shape)))


def test_camera_noise_grows_with_the_signal_on_the_sensor():
    """Shot noise: on the raw mosaic the noise variance rises with the signal; what comes out
    of the camera's processing is still larger on a mid-grey than on near-black."""
    kw = dict(shot_min=5e-3, shot_max=5e-3, read_jitter=0.0, shrink_prob=0.0)
    dark, mid = (_camera(flat(v), **kw) - flat(v) for v in (0.03, 0.5))
    assert mid.std() > 1.2 * dark.std()
    op = CameraNoise(**kw)
    p = op.sample(torch.Generator().manual_seed(0), (2, 3, 64, 64))
    var = lambda raw: (p["shot"].view(-1, 1, 1, 1) * raw + p["read"].view(-1, 1, 1, 1))  # noqa: E731
    assert (var(torch.full((2, 1, 1, 1), 0.5)) > 4 * var(torch.full((2, 1, 1, 1), 0.01))).all()


def test_camera_noise_is_correlated_between_neighbours_and_channels():
    x = flat(0.4, 96)
    n = _camera(x, shot_min=3e-3, shot_max=3e-3, shrink_prob=0.0) - x  # (B, 3, H, W)
    horizontal = (n[..., 1:] * n[..., :-1]).mean() / n.var()
    white = torch.randn_like(n)
    assert horizontal > 0.3 and abs((white[..., 1:] * white[..., :-1]).mean()) < 0.05
    channels = torch.corrcoef(n[0].flatten(1))
    assert channels[0, 1].abs() > 0.1  # the colour matrix mixes the sensor's channels


def test_camera_noise_replays_under_its_seed_and_handles_odd_sizes():
    x = torch.rand(3, 3, 37, 51)
    a, b, c = _camera(x, 4), _camera(x, 4), _camera(x, 5)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    coarse = _camera(x, 4, shrink_prob=1.0, shrink_min=0.5)  # noise made at a smaller size, enlarged
    assert coarse.shape == x.shape and torch.isfinite(coarse).all()


def test_mosaic_and_demosaic_keep_a_flat_colour():
    x = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1).expand(1, 3, 9, 12)
    assert torch.allclose(demosaic(mosaic(x)), x, atol=1e-6)


def test_correlated_noise_has_its_level_and_its_colour_mixing():
    x = flat(0.5, 128, b=1)
    op = CorrelatedNoise(20, 20, gray_prob=0.0, grain_max=1.0)
    n = op.apply(x, op.sample(torch.Generator().manual_seed(2), tuple(x.shape))) - x
    assert abs(n.std().item() * 255 - 20) < 2
    assert torch.corrcoef(n[0].flatten(1)).triu(1).abs().max() > 0.1
    coarse = CorrelatedNoise(20, 20, gray_prob=0.0, grain_max=3.0)
    draws = coarse.sample(torch.Generator().manual_seed(9), tuple(x.shape))
    m = coarse.apply(x, draws) - x
    if draws["field"].shape[-1] < 100:  # a coarse grain: neighbours alike
        assert (m[..., 1:] * m[..., :-1]).mean() / m.var() > 0.3


@pytest.mark.parametrize("name", sorted(DOWNSCALERS))
def test_every_downscaler_runs_its_library_and_keeps_a_flat_image(name):
    x = torch.full((2, 3, 40, 56), 0.3)
    y = downscale(x, (10, 14), name)
    assert y.shape == (2, 3, 10, 14) and torch.allclose(y, torch.tensor(0.3), atol=1e-5)


def test_downscalers_differ_and_the_op_draws_one_per_image():
    x = torch.rand(1, 3, 64, 64)
    outs = {n: downscale(x, (16, 16), n) for n in DOWNSCALERS}
    assert torch.allclose(outs["matlab_bicubic"], imresize(x.double(), 0.25).float(), atol=1e-6)
    assert (outs["cv2_cubic"] - outs["cv2_area"]).abs().mean() > 0.02  # aliasing vs averaging
    op = Downscale(4)
    batch = x.expand(16, -1, -1, -1)
    p = op.sample(torch.Generator().manual_seed(0), tuple(batch.shape))
    y = op.apply(batch, p)
    for i, k in enumerate(p["which"].tolist()):
        assert torch.equal(y[i], outs[op.names[k]][0])
    assert len(set(p["which"].tolist())) > 3


def _tasks(tiny_cfg, tmp_path):
    every_kind = ["task=denoise", "task_options.poisson_prob=0.25", "task_options.camera_prob=0.25",
                  "task_options.correlated_prob=0.25", "task_options.jpeg_prob=0.5", "task_options.twice_prob=0.5"]
    restore = ["task=restore", "task_options.pipeline=[{op: gaussian_blur, p: 1.0}, {op: gaussian_noise, p: 1.0}]"]
    return {
        "denoise": tiny_cfg(*every_kind),
        "upscale-classic": tiny_cfg("task=upscale", "task_options.scale=2"),
        "upscale-real": tiny_cfg("task=upscale", "task_options.scale=2", "task_options.degradation=real",
                                 "task_options.camera_prob=0.5"),
        "inpaint": tiny_cfg("task=inpaint"),
        "restore": tiny_cfg(*restore),
        "stylize": tiny_cfg(*STYLE, f"task_options.style_image={painting(tmp_path / 'p.png')}"),
        "repair": tiny_cfg("task=repair", "generator.out_channels=1", "generator.residual=false"),
    }


@pytest.mark.parametrize("which", ["denoise", "upscale-classic", "upscale-real", "inpaint", "restore", "stylize",
                                   "repair"])
def test_every_task_trains_on_inputs_a_file_can_hold(tiny_cfg, tmp_path, which):
    """Training inputs are exactly on 8-bit levels (stylize: its input is the 8-bit photo
    colour-matched as at inference, so the photo it starts from is what is checked)."""
    cfg = _tasks(tiny_cfg, tmp_path)[which]
    task = get_task(cfg.task).from_config(cfg)
    clean = quantize(torch.rand(4, 3, 64, 64))
    for seed in range(3):
        batch = task.degrade(clean, torch.Generator().manual_seed(seed))
        seen = batch.source if cfg.task == "stylize" else batch.input
        assert on_levels(seen), which
        if cfg.task != "stylize":
            assert not torch.equal(batch.input, batch.target)
    val = task.validation_batch(clean, torch.Generator().manual_seed(0))
    assert on_levels(val.source if cfg.task == "stylize" else val.input)


def test_every_registered_task_is_checked_above():
    assert set(TASKS) == {"denoise", "upscale", "inpaint", "restore", "stylize", "repair"}


def test_denoise_gives_the_level_only_for_plain_gaussian_noise(tiny_cfg):
    cfg = tiny_cfg("task=denoise", "task_options.poisson_prob=0.2", "task_options.camera_prob=0.3",
                   "task_options.correlated_prob=0.2", "task_options.jpeg_prob=0.5")
    task = get_task("denoise").from_config(cfg)
    clean = quantize(torch.rand(64, 3, 32, 32) * 0.8 + 0.1)
    batch = task.degrade(clean, torch.Generator().manual_seed(1))
    known = batch.cond[:, 1, 0, 0] > 0
    assert 2 <= known.sum() <= 30
    level = batch.cond[known, 0, 0, 0] * 50 / 255  # sigma in [0, 1] units
    residual = (batch.input[known] - clean[known]).flatten(1).std(1)
    assert torch.allclose(residual, level, atol=0.6 / 255 + 0.15 * level.max())  # white, at its level
    paper = get_task("denoise").from_config(tiny_cfg("task=denoise", "task_options.quantize_bits=0"))
    assert not on_levels(paper.degrade(clean, torch.Generator().manual_seed(1)).input)
    with pytest.raises(ConfigError, match="shares"):
        get_task("denoise").from_config(tiny_cfg("task=denoise", "task_options.camera_prob=0.9"))


def test_denoise_paper_share_keeps_only_plain_gaussian_images_as_floats(tiny_cfg):
    mix = ["task=denoise", "task_options.poisson_prob=0.2", "task_options.camera_prob=0.2",
           "task_options.correlated_prob=0.2", "task_options.jpeg_prob=0.5"]
    clean = quantize(torch.rand(64, 3, 16, 16) * 0.8 + 0.1)
    paper = get_task("denoise").from_config(tiny_cfg(*mix, "task_options.paper_prob=0.5"))
    batch = paper.degrade(clean, torch.Generator().manual_seed(3))
    floats = [not on_levels(x) for x in batch.input]
    assert 2 <= sum(floats) <= 30  # some images, not all
    # the same seed without the share gives the same images, each one as its 8-bit file
    filed = get_task("denoise").from_config(tiny_cfg(*mix)).degrade(clean, torch.Generator().manual_seed(3))
    assert on_levels(filed.input) and torch.equal(quantize(batch.input), filed.input)
    assert torch.equal(batch.cond, filed.cond)
    with pytest.raises(ConfigError, match="paper_prob"):
        get_task("denoise").from_config(tiny_cfg("task=denoise", "task_options.paper_prob=1.5"))


def test_denoise_low_sigma_share_draws_light_noise_and_leaves_other_seeds_alone(tiny_cfg):
    clean = quantize(torch.rand(64, 3, 16, 16) * 0.8 + 0.1)
    base = ["task=denoise", "task_options.poisson_prob=0", "task_options.known_sigma_prob=1"]
    levels = lambda b: b.cond[:, 0, 0, 0] * 50  # (B,) the given sigma, 0-255 scale
    plain = get_task("denoise").from_config(tiny_cfg(*base)).degrade(clean, torch.Generator().manual_seed(4))
    assert levels(plain).max() > 30  # uniform in [0, 50]
    low = get_task("denoise").from_config(tiny_cfg(*base, "task_options.low_sigma_prob=1",
                                                   "task_options.low_sigma_max=12"))
    batch = low.degrade(clean, torch.Generator().manual_seed(4))
    assert levels(batch).max() <= 12 + 1e-4 and levels(batch).std() > 2
    residual = (batch.input - clean).flatten(1).std(1) * 255  # the noise drawn is the noise given
    assert (residual - levels(batch)).abs().max() < 1.5
    half = get_task("denoise").from_config(tiny_cfg(*base, "task_options.low_sigma_prob=0.5"))
    share = (levels(half.degrade(clean, torch.Generator().manual_seed(4))) <= 20).float().mean()
    assert 0.5 < share < 0.9  # half redrawn at <= 20, plus the uniform draws that fell there
    with pytest.raises(ConfigError, match="low_sigma"):
        get_task("denoise").from_config(tiny_cfg("task=denoise", "task_options.low_sigma_prob=0.3",
                                                  "task_options.low_sigma_max=60"))
