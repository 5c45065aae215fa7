"""Task options are checked like every other config key (issue 22, item 10): a value out of its
range, not finite, of the wrong type, or a `<x>_min` above its `<x>_max` is one ConfigError line
naming `task_options.<key>` and the file, raised when the config loads, before any work."""
from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from conftest import TINY
from test_train_hostile import one_error, run, write_cfg
from vitrestore.config import ConfigError, load_config
from vitrestore.ops.pipeline import OPS
from vitrestore.fields import field_choices, field_range
from vitrestore.tasks import TASKS, get_task


def load(path, *overrides):
    return load_config(path, list(overrides), task_lookup=get_task)


@pytest.fixture
def cfg_file(tmp_path, image_dir):
    return write_cfg(tmp_path, image_dir)


DENOISE = [("sigma_max=-3", "sigma_max"), ("sigma_max=1e9", "sigma_max"), ("jpeg_prob=-1", "jpeg_prob"),
           ("val_sigma=-100", "val_sigma"), ("sigma_min=60", "sigma_min"), ("sigma_max=.nan", "sigma_max"),
           ("sigma_max=.inf", "sigma_max"), ("jpeg_prob=true", "jpeg_prob"), ("known_sigma_prob=2", "known_sigma_prob"),
           ("jpeg_quality_min=99", "jpeg_quality_min"), ("jpeg_quality_max=101", "jpeg_quality_max"),
           ("quantize_bits=4", "quantize_bits"), ("camera_shot_max=0", "camera_shot_max"),
           ("correlated_prob=0.9", "correlated_prob"), ("twice_prob=x", "twice_prob")]


@pytest.mark.parametrize("override,key", DENOISE)
def test_denoise_options_out_of_range_stop_the_cli_before_any_work(cfg_file, tmp_path, override, key):
    code, out = run("train", cfg_file, "-q", "--set", f"task_options.{override}")
    line = one_error(out)
    assert code == 2 and f"task_options.{key}" in line and str(cfg_file) in line, line
    assert not (tmp_path / "run").exists()


OTHERS = [
    ("upscale", "resize_min=0", "resize_min"), ("upscale", "jpeg_quality_min=99", "jpeg_quality_min"),
    ("upscale", "second_order_prob=2", "second_order_prob"), ("upscale", "scale=5", "scale"),
    ("upscale", "degradation=fancy", "degradation"), ("upscale", "noise_sigma_max=-1", "noise_sigma_max"),
    ("upscale", "camera_prob=.nan", "camera_prob"), ("upscale", "resize_min=2", "resize_min"),
    ("inpaint", "thin=-1", "thin"), ("inpaint", "hole_weight=.inf", "hole_weight"),
    ("inpaint", "prefill_radius=-1", "prefill_radius"), ("inpaint", "texture_patch=4", "texture_patch"),
    ("inpaint", "prefill=blur", "prefill"), ("inpaint", "texture_depth=-1", "texture_depth"),
    ("stylize", "strength=2", "strength"), ("stylize", "style_sides=[512,256]", "style_sides"),
    ("stylize", "texture_levels=[0]", "texture_levels"), ("stylize", "texture_levels=[]", "texture_levels"),
    ("stylize", "content_weight=-1", "content_weight"), ("stylize", "stroke_width=0", "stroke_width"),
    ("restore", "quantize=4", "quantize"), ("restore", "condition=maybe", "condition"),
    ("restore", "pipeline=[{op: gaussian_noise, sigma_max: -3}]", "pipeline[0].sigma_max"),
    ("restore", "pipeline=[{op: jpeg}, {op: jpeg, quality_min: 90, quality_max: 20}]", "pipeline[1].quality_min"),
    ("restore", "pipeline=[{op: gaussian_blur, sigma_min: 0}]", "pipeline[0].sigma_min"),
    ("restore", "pipeline=[{op: resample, modes: [nearest]}]", "pipeline[0].modes"),
    ("restore", "pipeline=[{op: resample, modes: []}]", "pipeline[0].modes"),
    ("restore", "pipeline=[{op: holes, size_max: 1.5}]", "pipeline[0].size_max"),
    ("restore", "pipeline=[{op: gaussian_noise, p: true}]", "pipeline[0].p"),
]


@pytest.mark.parametrize("task,override,key", OTHERS)
def test_every_tasks_options_are_checked_when_the_config_loads(cfg_file, task, override, key):
    base = [f"task={task}", "task_options={}"]
    if task == "restore":
        base.append("task_options.pipeline=[{op: gaussian_noise}]")
    load(cfg_file, *base)  # the task's defaults are fine
    with pytest.raises(ConfigError) as e:
        load(cfg_file, *base, f"task_options.{override}")
    message = str(e.value)
    assert f"task_options.{key}" in message and str(cfg_file) in message and "\n" not in message, message


def test_a_recipe_with_a_bad_later_stage_stops_before_the_first_trains(tmp_path, image_dir):
    base = {**TINY, "data": {**TINY["data"], "train": [str(image_dir)], "val_holdout": 1},
            "train": {**TINY["train"], "steps": 2, "val_every": 2}}
    (tmp_path / "stage.yaml").write_text(yaml.safe_dump(base))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"train": {"out": str(tmp_path / "run")}, "stages": [
        {"base": "stage.yaml"}, {"base": "stage.yaml", "task_options": {"sigma_max": -3}}]}))
    code, out = run("train", recipe, "-q")
    line = one_error(out)
    assert code == 2 and "(stage 2)" in line and "task_options.sigma_max" in line
    assert not (tmp_path / "run").exists()


def test_an_unknown_task_is_named_when_the_config_loads(cfg_file):
    with pytest.raises(ConfigError, match=r"task: unknown task 'denoize'"):
        load(cfg_file, "task=denoize")


def _numeric(tp) -> bool:
    args = typing.get_args(tp)
    return tp in (int, float) or (typing.get_origin(tp) is tuple and bool(args) and args[0] in (int, float))


def test_every_numeric_task_option_and_pipeline_parameter_has_a_range():
    for name, task in TASKS.items():
        hints = typing.get_type_hints(task.Options)
        for f in dataclasses.fields(task.Options):
            if _numeric(hints[f.name]):
                assert field_range(f) or field_choices(f), f"{name}: task_options.{f.name} has no range"
    for name, op in OPS.items():
        hints = typing.get_type_hints(op)
        for f in dataclasses.fields(op):
            if _numeric(hints[f.name]):
                assert field_range(f) or field_choices(f), f"pipeline op {name}: {f.name} has no range"


def test_shipped_configs_recipes_and_models_pass_the_option_checks():
    from pathlib import Path

    from vitrestore.recipe import load_recipe
    from vitrestore.tasks import load_model
    from vitrestore.weights import shipped_models

    root = Path(__file__).resolve().parent.parent / "configs"
    for p in sorted(root.glob("*.yaml")) + sorted((root / "shipped").glob("*.yaml")):
        load_recipe(p, task_lookup=get_task)
    for name in shipped_models():
        load_model(name, device="cpu")
