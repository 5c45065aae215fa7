"""`vitrestore train` and the run folder (issue 30, items 2 and 3 and the full-disk start): --force
clears only a run of ours and refuses anything else, --resume continues only a run of ours, one
run at a time holds a folder (an OS lock), and a start that saved no checkpoint is told the truth
and can simply be run again."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

import vitrestore.io.atomic
from conftest import TINY
from test_train_hostile import cfg_file, one_error, run, snapshot, trained, trained_once, write_cfg  # noqa: F401  (fixtures)
from vitrestore.engine.run_folder import LOCK, MARKER, RunLock




def user_folder(tmp_path):
    """A folder of someone's own: photos in samples/, another program's config.yaml."""
    folder = tmp_path / "run"
    (folder / "samples").mkdir(parents=True)
    (folder / "samples" / "holiday.jpg").write_bytes(b"\xff\xd8 my photo")
    (folder / "config.yaml").write_text("theme: dark\n")
    return folder


# --- item 2: --force and --resume only ever touch a run of ours -------------------------------------
def test_a_new_run_has_a_marker_and_a_lock_file(trained):
    marker = json.loads((trained / MARKER).read_text())
    assert marker["format"] == "vitrestore run folder" and marker["task"] == "denoise" and marker["run_id"]
    assert (trained / LOCK).is_file()
    assert torch.load(trained / "checkpoint.pt", weights_only=True)["run_id"] == marker["run_id"]


@pytest.mark.parametrize("force", [True, False])
def test_force_or_not_into_a_folder_that_is_not_a_run_deletes_nothing(cfg_file, tmp_path, force):
    folder = user_folder(tmp_path)
    before = snapshot(folder)
    code, out = run("train", cfg_file, "-q", *(["--force"] if force else []))
    line = one_error(out)
    assert code == 2 and str(folder) in line and "config.yaml" in line and "not part of a vitrestore run" in line
    assert "already holds a training run" not in line
    assert snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == ["config.yaml", "samples"]


@pytest.mark.parametrize("stray", ["notes.txt", "samples/holiday.jpg", "tensorboard/mine.txt", "stage-1/x.png"])
def test_force_refuses_a_run_folder_holding_a_file_of_someone_else(cfg_file, trained, stray):
    (trained / stray).parent.mkdir(exist_ok=True)
    (trained / stray).write_bytes(b"mine")
    before = snapshot(trained)
    code, out = run("train", cfg_file, "-q", "--force")
    line = one_error(out)
    assert code == 2 and str(trained) in line and stray.split("/")[0] in line and "nothing was deleted" in line
    assert snapshot(trained) == before


def test_force_clears_only_the_run_and_keeps_an_earlier_stage(cfg_file, trained, tmp_path):
    shutil.copytree(trained, tmp_path / "stage-copy")
    shutil.move(tmp_path / "stage-copy", trained / "stage-1")  # a recipe's earlier stage: a run of its own
    stage = snapshot(trained / "stage-1")
    old_id = json.loads((trained / MARKER).read_text())["run_id"]
    code, out = run("train", cfg_file, "-q", "--force", "--set", "train.steps=2")
    assert code == 0, out
    assert snapshot(trained / "stage-1") == stage
    assert json.loads((trained / MARKER).read_text())["run_id"] != old_id  # a new run


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path, trained):
    folder = user_folder(tmp_path / "user")
    shutil.copy(trained / "config.yaml", folder / "config.yaml")  # even with a run's config in it
    (folder / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = snapshot(folder)
    code, out = run("train", "--resume", folder, "-q")
    line = one_error(out)
    assert code == 2 and str(folder) in line and "not a vitrestore run folder" in line
    assert snapshot(folder) == before
    (trained / MARKER).write_text(json.dumps({"format": "something else", "run_id": "x"}))  # a forged marker
    (trained / "checkpoint.pt").write_bytes(b"not a checkpoint")
    code, out = run("train", "--resume", trained, "-q")
    assert code == 2 and "not a vitrestore run folder" in one_error(out)


def test_a_run_from_before_markers_is_known_by_its_checkpoint(cfg_file, trained):
    (trained / MARKER).unlink()
    code, out = run("train", "--resume", trained, "-q", "--set", "train.steps=4")
    assert code == 0 and "finished at step 4" in out, out
    marker = json.loads((trained / MARKER).read_text())  # adopted: marked from now on
    assert torch.load(trained / "checkpoint.pt", weights_only=True)["run_id"] == marker["run_id"]


def test_resume_refuses_a_checkpoint_of_another_run(trained):
    marker = json.loads((trained / MARKER).read_text())
    (trained / MARKER).write_text(json.dumps({**marker, "run_id": "0" * 32}))
    before = snapshot(trained)
    code, out = run("train", "--resume", trained, "-q")
    line = one_error(out)
    assert code == 2 and "checkpoint.pt" in line and "another run" in line
    assert snapshot(trained) == before


# --- item 3: one run at a time --------------------------------------------------------------------
HOLD = "import sys; from pathlib import Path; from vitrestore.engine.run_folder import RunLock; " \
       "RunLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); sys.stdin.read()"


def test_a_second_run_is_refused_while_another_process_holds_the_folder(cfg_file, trained):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(trained)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(trained)
        for args in (["--resume", trained], [cfg_file, "--force"], [cfg_file]):
            code, out = run("train", *args, "-q")
            line = one_error(out)
            assert code == 2 and str(trained) in line and ("in use by another training run" in line
                                                           or "already holds" in line), (args, line)
            assert snapshot(trained) == before
        code, out = run("train", "--resume", trained, "-q")
        assert f"pid {holder.pid}" in one_error(out)  # names who holds it
    finally:
        holder.kill()  # a killed holder: the system releases its lock
        holder.wait()
    code, out = run("train", "--resume", trained, "-q", "--set", "train.steps=4")
    assert code == 0 and "finished at step 4" in out, out


def test_the_lock_is_checked_again_when_the_run_starts(tiny_cfg, tmp_path):
    """Held after the trainer's checks passed and before it writes: refused, nothing written."""
    from vitrestore.config import ConfigError
    from vitrestore.engine.train import Trainer
    from vitrestore.tasks import get_task

    cfg = tiny_cfg("train.steps=2")
    trainer = Trainer(cfg, get_task("denoise").from_config(cfg), quiet=True)
    (tmp_path / "run").mkdir()
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    try:
        with pytest.raises(ConfigError, match="in use by another training run"):
            trainer.fit()
        assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK]
    finally:
        lock.release()
    trainer.fit()  # the lock is free again: this run starts
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    lock.acquire()  # and the finished run released it
    lock.release()


def test_a_checkpoint_replaced_after_it_was_loaded_is_not_resumed(tiny_cfg, trained, tmp_path):
    from vitrestore.config import ConfigError
    from vitrestore.engine.train import Trainer
    from vitrestore.tasks import get_task

    cfg = tiny_cfg("train.steps=4")
    trainer = Trainer(cfg, get_task("denoise").from_config(cfg), quiet=True, resume=True)
    st = torch.load(trained / "checkpoint.pt", weights_only=True)
    torch.save(st, tmp_path / "other.pt")
    (tmp_path / "other.pt").replace(trained / "checkpoint.pt")  # another run saved meanwhile
    before = snapshot(trained)
    with pytest.raises(ConfigError, match="replaced by another run"):
        trainer.fit()
    after = snapshot(trained)
    assert after.pop(LOCK) and before.pop(LOCK) and after == before  # the lock file names its last holder


def test_a_recipe_is_refused_before_any_stage_when_a_stage_folder_is_in_use(tmp_path, image_dir):
    base = {**TINY, "data": {**TINY["data"], "train": [str(image_dir)], "val_holdout": 1},
            "train": {**TINY["train"], "steps": 2, "val_every": 2}}
    (tmp_path / "stage.yaml").write_text(yaml.safe_dump(base))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"train": {"out": str(tmp_path / "run")},
                                      "stages": [{"base": "stage.yaml"}, {"base": "stage.yaml"}]}))
    (tmp_path / "run").mkdir()
    lock = RunLock(tmp_path / "run")  # the last stage's folder
    lock.acquire()
    try:
        code, out = run("train", recipe, "-q")
        line = one_error(out)
        assert code == 2 and "in use" in line and str(tmp_path / "run") in line
        assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK]  # stage 1 did not start
    finally:
        lock.release()


# --- a start that saved no checkpoint (a full disk) -------------------------------------------------
def full_at_checkpoint(f, data, target):
    if target.name == "checkpoint.pt":
        raise OSError(28, "No space left on device")
    f.write(data)


def test_a_full_disk_before_the_first_checkpoint_says_so_and_a_rerun_works(cfg_file, tmp_path, monkeypatch):
    monkeypatch.setattr(vitrestore.io.atomic, "_write", full_at_checkpoint)
    code, out = run("train", cfg_file, "-q")
    line = one_error(out)
    assert code == 2 and "No space left on device" in line and "no checkpoint was saved yet" in line
    assert "free space" in line and f"vitrestore train {cfg_file}" in line and "--resume" not in line
    monkeypatch.undo()
    folder = tmp_path / "run"
    code, out = run("train", "--resume", folder, "-q")  # nothing to resume: it says what to do instead
    line = one_error(out)
    assert code == 2 and "no checkpoint to resume from" in line and "before its first checkpoint" in line
    code, out = run("train", cfg_file, "-q")  # the same command again, no --force
    assert code == 0 and "finished at step 3" in out, out
    steps = [json.loads(ln)["step"] for ln in (folder / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(3) == 2  # one run's metrics (a log and a validation at 3)


def test_a_full_disk_after_a_checkpoint_points_to_resume(trained, monkeypatch):
    monkeypatch.setattr(vitrestore.io.atomic, "_write", full_at_checkpoint)
    code, out = run("train", "--resume", trained, "-q", "--set", "train.steps=4")
    line = one_error(out)
    assert code == 2 and "its last checkpoint is kept" in line and f"--resume {trained}" in line


def test_weights_without_a_checkpoint_are_not_cleared_without_force(cfg_file, trained):
    (trained / "checkpoint.pt").unlink()
    before = snapshot(trained)
    code, out = run("train", cfg_file, "-q")
    line = one_error(out)
    assert code == 2 and "weights.safetensors" in line and "--force" in line
    assert snapshot(trained) == before


def test_a_full_disk_never_leaves_half_a_metrics_line(trained, monkeypatch):
    import vitrestore.engine.run_folder as rf

    def half_then_full(fd, data):
        if len(data) > 20:
            os.write(fd, data[:10])
            return 10
        raise OSError(28, "No space left on device")

    before = (trained / "metrics.jsonl").read_bytes()
    monkeypatch.setattr(rf, "_write", half_then_full)
    code, out = run("train", "--resume", trained, "-q", "--set", "train.steps=4")
    line = one_error(out)
    assert code == 2 and "metrics.jsonl: No space left on device" in line and "--resume" in line
    assert (trained / "metrics.jsonl").read_bytes() == before  # cut back to whole lines
    monkeypatch.undo()
    code, out = run("train", "--resume", trained, "-q", "--set", "train.steps=4")
    assert code == 0, out
    assert all(json.loads(ln) for ln in (trained / "metrics.jsonl").read_text().splitlines())
