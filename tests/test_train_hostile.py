"""`vitrestore train` against hostile use (issue 22): a run folder is never lost or changed by a
run that did not start cleanly, a checkpoint never runs code, every error is one line."""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import signal

import pytest
import torch
import yaml
from click.testing import CliRunner

import vitrestore.io.atomic
from conftest import TINY
from vitrestore.cli import main
from vitrestore.config import ConfigError, load_config
from vitrestore.fields import field_range


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


def one_error(out: str) -> str:
    """The single 'error: ...' line of a failed command (and no traceback)."""
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, out
    return lines[0]


def write_cfg(folder, image_dir):
    """A tiny 3-step training config in `folder`, training into folder/run."""
    raw = {**TINY, "data": {**TINY["data"], "train": [str(image_dir)], "val_holdout": 1},
           "train": {**TINY["train"], "steps": 3, "log_every": 1, "val_every": 3, "out": str(folder / "run")}}
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def cfg_file(tmp_path, image_dir):
    return write_cfg(tmp_path, image_dir)


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, image_dir):
    """One finished tiny run for the whole module (training it is most of a test's time)."""
    folder = tmp_path_factory.mktemp("trained")
    code, out = run("train", write_cfg(folder, image_dir), "-q")
    assert code == 0, out
    return folder / "run"


@pytest.fixture
def trained(trained_once, cfg_file, tmp_path):
    """This test's own copy of the finished run, at cfg_file's train.out (resume takes the folder
    it is given as the run's place, not the path in its config.yaml)."""
    shutil.copytree(trained_once, tmp_path / "run")
    return tmp_path / "run"


def test_train_into_an_existing_run_refuses_and_touches_nothing(cfg_file, trained):
    before = snapshot(trained)
    code, out = run("train", cfg_file, "-q")
    line = one_error(out)
    assert code != 0 and "--resume" in line and "--force" in line and str(trained) in line
    assert snapshot(trained) == before
    code, out = run("train", cfg_file, "-q", "--force", "--set", "train.steps=2")
    assert code == 0, out
    steps = [r["step"] for r in map(yaml.safe_load, (trained / "metrics.jsonl").read_text().splitlines())]
    assert steps[0] == 1 and max(steps) == 2  # a fresh run: the old metrics were not appended to
    code, out = run("train", "--resume", trained, "--force")
    assert code != 0 and "--force" in one_error(out)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_resume_never_unpickles_code(trained, tmp_path):
    marker = tmp_path / "pwned"
    st = torch.load(trained / "checkpoint.pt", weights_only=True)
    st["G"] = _Payload(str(marker))
    torch.save(st, trained / "checkpoint.pt")
    code, out = run("train", "--resume", trained, "-q")
    line = one_error(out)
    assert code != 0 and not marker.exists() and "checkpoint.pt" in line and "could run code" in line


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "list", "no_G"])
def test_resume_with_a_damaged_checkpoint_is_one_line(trained, damage):
    ckpt = trained / "checkpoint.pt"
    data = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "garbage":
        ckpt.write_bytes(pickle.dumps("hello") * 3)
    elif damage == "list":
        torch.save([1, 2, 3], ckpt)
    else:
        st = torch.load(ckpt, weights_only=True)
        del st["G"]
        torch.save(st, ckpt)
    before = snapshot(trained)
    code, out = run("train", "--resume", trained, "-q")
    line = one_error(out)
    assert code == 2 and "checkpoint.pt" in line and "Aborted" not in out
    assert snapshot(trained) == before


def test_resume_with_config_edited_to_another_shape(trained):
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    cfg["generator"]["dims"] = [16, 32]
    cfg["generator"]["heads"] = [2, 4]
    (trained / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(trained)
    code, out = run("train", "--resume", trained, "-q")
    line = one_error(out)
    assert code == 2 and "generator.dims" in line and "checkpoint" in line
    assert snapshot(trained) == before


@pytest.mark.parametrize("override", ["train.val_every=0", "train.log_every=0", "generator.window=0",
                                      "train.steps=[", "data.train=[unclosed", "train.ema_decay=5",
                                      "train.threads=-2", "train.steps=-5", "generator.heads=[3,2]",
                                      "train.lr=.nan", "train.steps=many"])
def test_bad_set_on_resume_changes_nothing(trained, override):
    before = snapshot(trained)
    code, out = run("train", "--resume", trained, "-q", "--set", "train.steps=6", "--set", override)
    line = one_error(out)
    assert code == 2 and override.split("=")[0] in line
    assert snapshot(trained) == before
    code, out = run("train", "--resume", trained, "-q")  # the run still resumes
    assert code == 0, out


def test_every_numeric_config_key_has_a_range():
    import dataclasses
    import typing

    from vitrestore.config import Config

    for section in ("generator", "discriminator", "loss", "data", "train"):
        sub = getattr(Config(), section)
        hints = typing.get_type_hints(type(sub))
        for f in dataclasses.fields(sub):
            if typing.get_origin(hints[f.name]) is typing.Literal:
                continue  # a closed choice, checked by the loader
            value = getattr(sub, f.name)
            item = value[0] if isinstance(value, tuple) and value else value
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                assert field_range(f), f"{section}.{f.name} has no range"


def test_range_errors_name_key_and_file(cfg_file):
    with pytest.raises(ConfigError) as e:
        load_config(cfg_file, ["train.val_every=0"])
    assert str(cfg_file) in str(e.value) and "train.val_every" in str(e.value)


def test_init_weights_of_another_shape_or_task(cfg_file, tiny_upscale_weights, tmp_path):
    code, out = run("train", cfg_file, "-q", "--set", f"train.init_weights={tiny_upscale_weights}")
    line = one_error(out)
    assert code == 2 and "train.init_weights" in line and not (tmp_path / "run").exists()


def test_binary_yaml_and_missing_run_folder(tmp_path):
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00\x81binary")
    code, out = run("train", bad)
    assert code == 2 and str(bad) in one_error(out)
    code, out = run("train", "--resume", tmp_path / "nope")
    assert code == 2 and "nope" in one_error(out)


def test_quotes_at_the_ends_of_messages_are_kept(cfg_file):
    code, out = run("train", cfg_file, "--set", "train.steps=five")
    assert "'five'" in one_error(out)


def test_full_disk_keeps_the_old_checkpoint_and_leaves_no_temporary(trained, monkeypatch):
    before = (trained / "checkpoint.pt").read_bytes()

    def full(f, data, target):
        f.write(data[:10])
        if target.name != "checkpoint.pt":
            return f.write(data[10:])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vitrestore.io.atomic, "_write", full)
    code, out = run("train", "--resume", trained, "-q", "--set", "train.steps=4")
    line = one_error(out)
    assert code == 2 and "No space left on device" in line and "checkpoint.pt" in line
    assert (trained / "checkpoint.pt").read_bytes() == before
    assert not [p for p in trained.iterdir() if p.name.endswith(".tmp")]


def test_weights_file_is_world_readable(trained):
    mode = (trained / "weights.safetensors").stat().st_mode & 0o777
    assert mode == 0o644 & ~vitrestore.io.atomic._umask()


def test_interrupted_training_exits_130(cfg_file, tmp_path, monkeypatch):
    from vitrestore.engine.train import Trainer

    real = Trainer.train_step

    def step_then_sigterm(self, batch):
        logs = real(self, batch)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return logs

    monkeypatch.setattr(Trainer, "train_step", step_then_sigterm)
    code, out = run("train", cfg_file, "-q")
    assert code == 130 and "interrupted at step" in out and "--resume" in out
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_truncated_training_image_is_skipped_like_a_text_file(cfg_file, image_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(image_dir, data)
    whole = (data / "img0.png").read_bytes()
    (data / "img0.png").write_bytes(whole[: len(whole) // 2])  # valid header, data cut off
    (data / "a_notes.png").write_text("not an image")  # sorts first: a training file
    code, out = run("train", cfg_file, "-q", "--set", f"data.train=[{data}]")
    assert code == 0, out
    assert "img0.png: not a readable image" in out and "a_notes.png: not a readable image" in out


def test_val_holdout_larger_than_the_data(cfg_file, tmp_path):
    code, out = run("train", cfg_file, "-q", "--set", "data.val_holdout=50")
    line = one_error(out)
    assert code == 2 and "data.val_holdout" in line and "of the 6" in line and not (tmp_path / "run").exists()


def test_resume_a_folder_whose_name_is_yaml_syntax(cfg_file, tmp_path):
    odd = tmp_path / "[x]: y"
    code, out = run("train", cfg_file, "-q", "--set", f"train.out='{odd}'")
    assert code == 0, out
    code, out = run("train", "--resume", odd, "-q", "--set", "train.steps=4")
    assert code == 0 and "finished at step 4" in out, out


def test_no_readable_training_image_names_key_and_file(cfg_file, tmp_path):
    data = tmp_path / "junk"
    data.mkdir()
    for i in range(3):
        (data / f"j{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))  # a PNG signature, nothing else
    code, out = run("train", cfg_file, "-q", "--set", f"data.train=[{data}]", "--set", "data.val_holdout=0")
    line = one_error(out)
    assert code == 2 and str(cfg_file) in line and "data.train" in line and "can be read" in line
    assert not (tmp_path / "run").exists()
