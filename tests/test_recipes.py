"""Recipes: stages load and chain; every shipped model's recipe (configs/shipped/) ends in the
exact config embedded in its weights."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vitrestore.config import ConfigError, config_to_dict, load_config
from vitrestore.recipe import load_recipe
from vitrestore.tasks import get_task
from vitrestore.weights import read_metadata, resolve, shipped_models

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "configs" / "shipped"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_plain_config_is_one_stage(tmp_path):
    p = write(tmp_path / "c.yaml", "task: denoise\ntrain:\n  steps: 7\n  out: runs/x\n")
    (cfg,) = load_recipe(p, ["train.lr=0.001"])
    assert (cfg.train.steps, cfg.train.lr, cfg.train.out) == (7, 0.001, "runs/x")


def test_stages_chain_folders_and_weights(tmp_path):
    write(tmp_path / "base" / "a.yaml", "task: denoise\ndata:\n  crop: 48\ntrain:\n  steps: 5\n  out: runs/a\n"
                                         "  init_weights: denoise\n")
    p = write(tmp_path / "recipes" / "r.yaml",
              "train:\n  out: runs/r\n  lr: 0.002\n"
              "stages:\n"
              "  - base: ../base/a.yaml\n"
              "  - base: ../base/a.yaml\n    train: {steps: 9, lr: 0.001}\n"
              "  - {task: denoise, data: {crop: 32}}\n")
    s1, s2, s3 = load_recipe(p, ["data.batch=2"])
    assert [s.train.out for s in (s1, s2, s3)] == ["runs/r/stage-1", "runs/r/stage-2", "runs/r"]
    assert s1.train.init_weights == "denoise"  # the first stage keeps its own
    assert s2.train.init_weights == "runs/r/stage-1/weights.safetensors"
    assert s3.train.init_weights == "runs/r/stage-2/weights.safetensors"
    assert (s1.train.steps, s2.train.steps) == (5, 9)
    assert (s1.train.lr, s2.train.lr, s3.train.lr) == (0.002, 0.001, 0.002)  # stage keys over recipe keys
    assert (s1.data.crop, s3.data.crop) == (48, 32)
    assert {s.data.batch for s in (s1, s2, s3)} == {2}  # --set applies to every stage
    assert s2.source == f"{p} (stage 2)"


@pytest.mark.parametrize("text, key", [
    ("stages: []\n", "stages"),
    ("stages: [3]\n", "stages"),
    ("stages:\n  - {train: {stpes: 3}}\n", "train.stpes"),
    ("stages:\n  - base: missing.yaml\n", "missing.yaml"),
])
def test_bad_stages_name_the_problem(tmp_path, text, key):
    p = write(tmp_path / "r.yaml", text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_recipe(p)


def _embedded_config(name: str) -> dict:
    return read_metadata(resolve(name))[0]


def _comparable(cfg) -> dict:
    """What a recipe fixes: everything but where this run writes and starts from, and the data
    folders by name (a GPU run read a copy of CBSD432 elsewhere)."""
    d = config_to_dict(cfg)
    d.pop("source")
    d["task_options"] = dataclasses.asdict(get_task(cfg.task).from_config(cfg).options)  # defaults filled in
    d["train"].pop("out"), d["train"].pop("init_weights")
    d["data"]["train"] = [Path(p).name for p in d["data"]["train"]]
    return d


def test_every_shipped_model_has_a_recipe():
    assert sorted(p.stem for p in SHIPPED.glob("*.yaml")) == sorted(shipped_models())


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_shipped_recipe_ends_in_the_weights_config(name):
    stages = load_recipe(SHIPPED / f"{name}.yaml")
    embedded = load_config(raw=_embedded_config(name))  # keys added since fill in with their defaults
    assert _comparable(stages[-1]) == _comparable(embedded)
    assert stages[-1].train.out == f"runs/{name}"


@pytest.mark.slow
def test_train_runs_the_stages_in_order_and_a_rerun_continues(tmp_path, image_dir):
    """Two tiny stages through the CLI: the second starts from the first's weights (its card says
    so); the same command again resumes both finished stages and ends at once, changing nothing
    in the first stage's weights."""
    import torch
    import yaml
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from conftest import TINY
    from vitrestore.cli import main

    base = {**TINY, "data": {**TINY["data"], "train": [str(image_dir)], "val_holdout": 1},
            "train": {**TINY["train"], "steps": 2, "val_every": 2, "log_every": 1}}
    write(tmp_path / "stage.yaml", yaml.safe_dump(base))
    recipe = write(tmp_path / "r.yaml", yaml.safe_dump({
        "train": {"out": str(tmp_path / "run")},
        "stages": [{"base": "stage.yaml"}, {"base": "stage.yaml", "train": {"steps": 3, "lr": 1e-3}}]}))
    res = CliRunner().invoke(main, ["train", str(recipe), "-q"])
    assert res.exit_code == 0, res.output
    first, last = tmp_path / "run" / "stage-1" / "weights.safetensors", tmp_path / "run" / "weights.safetensors"
    assert "stage 1 of 2" in res.output and "stage 2 of 2" in res.output
    cfg1, card1 = read_metadata(first)
    cfg2, card2 = read_metadata(last)
    assert (card1["steps"], card2["steps"]) == (2, 3)
    assert cfg2["train"]["init_weights"] == str(first) and cfg1["train"]["init_weights"] is None
    before = (load_file(first), read_metadata(first))
    again = CliRunner().invoke(main, ["train", str(recipe), "-q"])
    assert again.exit_code == 0, again.output
    assert again.output.count("(resumed)") == 2 and "finished at step 3" in again.output
    after = (load_file(first), read_metadata(first))  # (the file's bytes may differ: metadata order)
    assert after[1] == before[1] and after[0].keys() == before[0].keys()
    assert all(torch.equal(after[0][k], before[0][k]) for k in before[0])
