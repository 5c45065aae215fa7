"""Checks that run before training starts, so a bad config fails in a second with a message
naming the key or path, not an hour into a run.

Unknown keys, wrong types and values out of range (each field's, vitrestore/fields.py) are caught when the config is
loaded (`config.py`, and again here for a Config built by hand); this module
checks what needs the file system and the launch: data folders exist and hold images, images
are at least the crop size, pairs match, and the batch splits over processes and accumulation.
"""
from __future__ import annotations

from pathlib import Path

from ..config import Config, ConfigError
from ..config import check_values as _check_values
from ..data import IMAGE_SUFFIXES, image_size, list_images, match_pairs


def check_values(cfg: Config, src: str) -> None:
    try:
        _check_values(cfg, src)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

_KINDS = ", ".join(sorted(IMAGE_SUFFIXES))


def _folder_images(key: str, folder: str, source: str) -> list[Path]:
    path = Path(folder).expanduser()
    if not path.exists():
        raise ConfigError(f"{source}: {key}: {path}: no such folder")
    if not path.is_dir():
        raise ConfigError(f"{source}: {key}: {path}: not a folder")
    try:
        images = list_images(path)
    except OSError as exc:
        raise ConfigError(f"{source}: {key}: {path}: cannot be read ({exc.strerror or exc})") from None
    if not images:
        raise ConfigError(f"{source}: {key}: {path}: holds no images ({_KINDS})")
    return images


def _check_sizes(key: str, images: list[Path], need: int, min_size: int, source: str) -> None:
    """Every image must be at least `need` px on its shorter side, unless data.min_size skips them."""
    small, usable, unreadable = [], 0, []
    for p in images:
        size = image_size(p)
        if size is None:
            unreadable.append(p)  # skipped with a warning by the loader
            continue
        if min(size) < need:
            small.append((p, size))
        elif min(size) >= min_size:
            usable += 1
    if small and not min_size:
        p, (w, h) = small[0]
        raise ConfigError(
            f"{source}: data.crop: {len(small)} of {len(images)} images in {key} are smaller than the "
            f"{need}px crop (e.g. {p}: {w}x{h}); lower data.crop, or set data.min_size={need} to skip them")
    if not usable and len(unreadable) == len(images):
        raise ConfigError(f"{source}: {key}: none of the {len(images)} images can be read (e.g. {unreadable[0]})")
    if not usable:
        raise ConfigError(f"{source}: {key}: no image is at least {max(need, min_size)}px on its shorter side")


def check_training_setup(cfg: Config, scale: int = 1, world: int = 1) -> None:
    """Raise ConfigError for anything that would stop or spoil the run; silent when all is well."""
    d, src = cfg.data, cfg.source
    if not d.train:
        raise ConfigError(f"{src}: data.train is empty: name a folder of training images "
                          f"(e.g. --set data.train=~/photos)")
    check_values(cfg, src)  # ranges of every numeric key (already checked by load_config; a Config
    # built by hand comes here too)
    if d.crop % scale:
        raise ConfigError(f"{src}: data.crop={d.crop} must be a multiple of the task's scale {scale}")
    if d.batch % (world * cfg.train.accumulate):
        raise ConfigError(f"{src}: data.batch={d.batch} must be divisible by processes x train.accumulate "
                          f"= {world} x {cfg.train.accumulate}")
    if d.input:
        if len(d.train) != 1:
            raise ConfigError(f"{src}: data.input (paired data) needs exactly one data.train target folder")
        _folder_images("data.input", d.input, src)
        targets = _folder_images("data.train", d.train[0], src)
        pairs, missing = match_pairs(Path(d.input).expanduser(), Path(d.train[0]).expanduser())
        if missing:
            raise ConfigError(f"{src}: data.input: {len(missing)} input images have no target of the same "
                              f"name in {d.train[0]} (e.g. {missing[0]})")
        for inp, tgt in pairs[:50]:
            a, b = image_size(inp), image_size(tgt)
            if a and b and (a[0] * scale, a[1] * scale) != b:
                raise ConfigError(f"{src}: data.input: {inp} is {a[0]}x{a[1]} but its target {tgt} is "
                                  f"{b[0]}x{b[1]} (expected {scale}x the input)")
        _check_sizes("data.train", targets, d.crop, d.min_size, src)
        count = len(targets)
    else:
        count = 0
        for folder in d.train:
            found = _folder_images("data.train", folder, src)
            _check_sizes("data.train", found, d.crop, d.min_size, src)
            count += len(found)
    if d.val_holdout and not d.val and d.val_holdout >= count:
        raise ConfigError(f"{src}: data.val_holdout: holding out {d.val_holdout} of the {count} training images "
                          f"leaves none to train on; lower it (or name a data.val folder)")
    if d.val:
        _folder_images("data.val", d.val, src)
    if cfg.train.init_weights:
        from ..weights import WeightsError, resolve

        try:
            resolve(cfg.train.init_weights)
        except WeightsError as exc:
            raise ConfigError(f"{src}: train.init_weights: {exc}") from None
