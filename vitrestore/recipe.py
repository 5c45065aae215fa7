"""Recipes: a training config of one stage, or of several run one after the other.

A plain config file is a recipe of one stage. A file with `stages:` lists the stages in order,
each a config mapping (it may name a `base:` file, relative to the recipe file); the recipe's
other top-level keys apply to every stage (over its base, under its own keys), and `--set`
overrides to every stage over everything:

    # configs/shipped/upscale-x2.yaml
    train: {out: runs/upscale-x2}
    stages:
      - base: ../upscale_x2.yaml               # from scratch
        data: {batch: 32}
      - base: ../upscale_x2_files.yaml         # fine-tuned from the stage before

    stages = load_recipe("configs/shipped/upscale-x2.yaml", ["data.train=[photos]"])

The last stage trains in `train.out` (runs/upscale-x2: where a one-stage config would put the
model); stage k of n before it in `<train.out>/stage-k`. Each stage after the first starts from
the weights of the one before (its own `train.init_weights` is replaced), so the chain is the
whole history of a model: `vitrestore train configs/shipped/X.yaml` retrains shipped model X.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from .config import Config, ConfigError, load_config, merge, read_yaml


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                task_lookup: Callable[[str], Any] | None = None) -> list[Config]:
    """The stages of the recipe at `path`, each a checked Config with its run folder and (after
    the first) its init weights set. A file without `stages:` is one stage, loaded as is. With
    `task_lookup`, every stage's task options are checked too, before any stage runs."""
    path = Path(path)
    raw = read_yaml(path)
    if "stages" not in raw:
        return [load_config(path, overrides, task_lookup=task_lookup)]
    stages = raw.pop("stages")
    if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
        raise ConfigError(f"{path}: stages: must be a non-empty list of config mappings")
    configs = []
    for k, stage in enumerate(stages, 1):
        stage = dict(stage)
        base = stage.pop("base", None)
        data = read_yaml(path.parent / str(base)) if base is not None else {}
        data = merge(merge(data, raw), stage)  # base, then the recipe-wide keys, then the stage's own
        configs.append(load_config(raw=data, overrides=overrides, source=f"{path} (stage {k})",
                                   task_lookup=task_lookup))
    return _chain(configs)


def _chain(configs: list[Config]) -> list[Config]:
    """Run folders and init weights of a chain of stages (the last stage's train.out is the
    chain's)."""
    n = len(configs)
    if n == 1:
        return configs
    out = Path(configs[-1].train.out)
    chained, previous = [], None
    for k, cfg in enumerate(configs, 1):
        stage_out = out if k == n else out / f"stage-{k}"
        train = dataclasses.replace(cfg.train, out=str(stage_out))
        if previous is not None:
            train = dataclasses.replace(train, init_weights=str(previous / "weights.safetensors"))
        chained.append(dataclasses.replace(cfg, train=train))
        previous = stage_out
    return chained
