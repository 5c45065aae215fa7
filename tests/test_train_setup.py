"""Config errors found before training starts: each names the key or the path."""
import cv2
import numpy as np
import pytest

from conftest import smooth_image
from vitrestore.config import ConfigError
from vitrestore.engine.preflight import check_training_setup
from vitrestore.engine.train import Trainer
from vitrestore.tasks import get_task


def images(folder, n=3, size=(72, 88), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"im{i}.png"), smooth_image(rng, *size))
    return folder


def error_of(cfg, world=1):
    with pytest.raises(ConfigError) as e:
        check_training_setup(cfg, 1, world)
    return str(e.value)


def test_missing_and_empty_data_folders(tiny_cfg, tmp_path):
    assert "data.train is empty" in error_of(tiny_cfg("data.train=[]"))
    msg = error_of(tiny_cfg(f"data.train={tmp_path / 'nope'}"))
    assert "data.train" in msg and "nope" in msg and "no such folder" in msg
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    msg = error_of(tiny_cfg(f"data.train={tmp_path / 'empty'}"))
    assert "data.train" in msg and "holds no images" in msg
    msg = error_of(tiny_cfg(f"data.val={tmp_path / 'nothere'}"))
    assert "data.val" in msg and "nothere" in msg


def test_images_smaller_than_the_crop(tiny_cfg, tmp_path):
    folder = images(tmp_path / "mixed", 2)
    images(folder / "small", 1, size=(20, 40), seed=1)
    msg = error_of(tiny_cfg(f"data.train={folder}"))
    assert "data.crop" in msg and "1 of 3" in msg and "40x20" in msg
    check_training_setup(tiny_cfg(f"data.train={folder}", "data.min_size=32"))  # skipping them is allowed
    msg = error_of(tiny_cfg(f"data.train={folder}", "data.crop=512", "data.min_size=512"))
    assert "no image is at least 512px" in msg


def test_batch_must_split_over_processes_and_accumulation(tiny_cfg):
    assert "data.batch=4" in error_of(tiny_cfg("train.accumulate=3"))
    assert "2 x 2" in error_of(tiny_cfg("data.batch=6", "train.accumulate=2"), world=2)
    with pytest.raises(ConfigError, match="train.precision"):  # a closed choice: checked when loaded
        tiny_cfg("train.precision=fp8")


def test_paired_data_must_match(tiny_cfg, tmp_path):
    targets = images(tmp_path / "clean", 3)
    inputs = images(tmp_path / "degraded", 2)
    images(tmp_path / "degraded" / "extra", 1)
    msg = error_of(tiny_cfg(f"data.train={targets}", f"data.input={inputs}"))
    assert "data.input" in msg and "no target" in msg
    wrong = images(tmp_path / "wrongsize", 3, size=(60, 88))
    msg = error_of(tiny_cfg(f"data.train={targets}", f"data.input={wrong}"))
    assert "data.input" in msg and "88x60" in msg


def test_trainer_runs_the_checks_before_building_anything(tiny_cfg, tmp_path):
    cfg = tiny_cfg(f"data.train={tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="no such folder"):
        Trainer(cfg, get_task("denoise").from_config(cfg), quiet=True)
    assert not (tmp_path / "run").exists()


def test_unknown_init_weights_is_named(tiny_cfg):
    assert "train.init_weights" in error_of(tiny_cfg("train.init_weights=no-such-model"))
