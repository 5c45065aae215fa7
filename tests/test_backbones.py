"""A backbone is one module and its line in vitrestore/backbones.py: `generator.arch` picks
it, the task gives it its condition channels and scale, and training, weights, the runtime's
tiles, the CLI and ONNX export all take it as they take the U-ViT (here a small conv net written
into a fresh folder, as a user's module would be). Weights and checkpoints of earlier versions,
whose generator section holds the keys the task sets now, still load."""
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import smooth_image
from vitrestore.config import ConfigError, load_config
from vitrestore.engine.checkpoint import config_difference
from vitrestore import backbones

TOY = '''
import torch
from torch import nn


class ToyNet(nn.Module):
    """Two convolutions and a pixel shuffle, padded to multiples of 4 (so the pad is exercised)."""

    def __init__(self, cfg, cond_channels=0, scale=1):
        super().__init__()
        self.cfg, self.cond_channels, self.scale, self.pad_multiple = cfg, cond_channels, scale, 4
        self.body = nn.Sequential(nn.Conv2d(cfg.in_channels + cond_channels, cfg.stem_channels, 3, padding=1),
                                  nn.GELU(), nn.Conv2d(cfg.stem_channels, cfg.out_channels * scale ** 2, 3, padding=1),
                                  nn.PixelShuffle(scale))

    def forward(self, x, cond=None):
        h, w = x.shape[-2:]
        inp = torch.cat([x, cond], 1) if self.cond_channels else x
        inp = nn.functional.pad(inp, (0, (-w) % 4, 0, (-h) % 4), mode="replicate")
        out = self.body(inp)[..., : h * self.scale, : w * self.scale]
        base = nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear") if self.scale > 1 else x
        return out + base
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_backbone.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backbones.BACKBONES, "toy", "toy_backbone:ToyNet")
    yield
    sys.modules.pop("toy_backbone", None)


def test_an_unknown_arch_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"generator.arch: must be one of .*uvit.*got 'resnet'"):
        load_config(raw={"generator": {"arch": "resnet"}})


def test_a_new_backbone_trains_saves_loads_and_runs(toy, tiny_cfg, tmp_path):
    from vitrestore.engine.train import Trainer
    from vitrestore.tasks import get_task, load_model

    cfg = tiny_cfg("generator.arch=toy", "train.steps=6", "train.val_every=3")
    trainer = Trainer(cfg, get_task("denoise").from_config(cfg), quiet=True)
    assert type(trainer.G).__name__ == "ToyNet" and trainer.G.cond_channels == 2  # denoise's level map
    trainer.fit()
    weights = tmp_path / "run" / "weights.safetensors"
    model = load_model(weights, device="cpu", backend="torch", tile=32)
    assert type(model.generator).__name__ == "ToyNet" and model.config["generator"]["arch"] == "toy"
    img = smooth_image(np.random.default_rng(1), 45, 70)
    whole = load_model(weights, device="cpu", backend="torch", tile=0).run_arrays([img])[0]
    tiled = model.run_arrays([img])[0]
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert tiled.shape == img.shape and diff.mean() <= 1, diff.mean()  # tiles blend (blind level per tile)

    from vitrestore.cli import main

    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), img)
    done = CliRunner().invoke(main, ["denoise", str(photo), "--model", str(weights), "-q"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "p_denoised.png").is_file()


def test_a_new_backbone_exports_to_onnx(toy, tmp_path):
    pytest.importorskip("onnxruntime")
    from vitrestore.config import GeneratorConfig
    from vitrestore.engine.onnx_check import compare_with_torch
    from vitrestore.engine.onnx_export import export_generator

    torch.manual_seed(0)
    net = backbones.build_generator(GeneratorConfig(arch="toy", stem_channels=8), cond_channels=1, scale=2).eval()
    path = tmp_path / "toy.onnx"
    export_generator(net, path, {"task": "x"}, {}, "x: test")
    shape, diff = compare_with_torch(net, path, batches=(1, 2))
    assert diff <= 1e-4 and shape[0] % 4 and shape[1] % 4  # an odd size: the pad is in the graph


def test_files_of_earlier_versions_load_and_resume():
    """Weights, checkpoints and configs that hold generator.cond_channels / upscale (set by the task
    now, and always overwritten by it) still load, whatever the value; one outside the range the
    key had is refused."""
    old = {"cond_channels": 0, "upscale": 1, "dims": [8, 16], "heads": [1, 2], "enc_depths": [1, 1], "dec_depths": [1]}
    assert load_config(raw={"generator": old}).generator.dims == (8, 16)
    for key, value in (("upscale", 4), ("cond_channels", 2)):  # e.g. an x4 model's own scale
        assert load_config(raw={"generator": {**old, key: value}}).generator.dims == (8, 16)
    for key, value in (("upscale", 40), ("cond_channels", -1), ("upscale", True)):
        with pytest.raises(ConfigError, match=f"generator.{key}: must be between"):
            load_config(raw={"generator": {**old, key: value}})
    new = {"generator": {"arch": "uvit", **{k: v for k, v in old.items() if k not in ("cond_channels", "upscale")}}}
    assert config_difference({"generator": old}, new) is None  # an old checkpoint resumes
    assert "generator.arch" in config_difference({"generator": old}, {"generator": {**new["generator"], "arch": "x"}})


def test_a_one_level_generator_still_loads():
    cfg = load_config(raw={"generator": {"dims": [32], "heads": [1], "enc_depths": [2], "dec_depths": []}})
    from vitrestore.backbones import build_generator

    assert build_generator(cfg.generator)(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)
    with pytest.raises(ConfigError, match="generator.dims: needs at least one level"):
        load_config(raw={"generator": {"dims": [], "heads": [], "enc_depths": [], "dec_depths": []}})


def test_a_task_overriding_the_old_infer_is_refused():
    from vitrestore.task import Task

    with pytest.raises(TypeError, match="passes"):
        type("Old", (Task,), {"infer": lambda self, run, image, tile, **r: run(image, tile, **r)})
