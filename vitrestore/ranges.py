"""The allowed values of every numeric config key, checked when a
config is loaded, so `train.val_every=0` or `generator.window=0` is a one-line error naming
the key and the file, not a ZeroDivisionError an hour into a run (or garbage trained at rc 0).

Every int/float field of the config dataclasses has an entry in RANGES (a test enforces it);
tuple fields are checked item by item. Closed choices are `Literal` fields, checked by the
loader (config.py).

Task options (`task_options`) are checked the same way by `check_fields`: each task's options
dataclass names its ranges and choices (`RANGES`, `CHOICES` class attributes, tasks/*.py), and
the degradation ops of a YAML pipeline have theirs in OP_RANGES / OP_CHOICES below. Every number
must be finite and in its range, every `<x>_min` at most its `<x>_max`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

INF = math.inf

# key: (lowest, highest), both inclusive
RANGES: dict[str, tuple[float, float]] = {
    "generator.in_channels": (1, 64),
    "generator.out_channels": (1, 64),
    "generator.stem_channels": (1, 4096),
    "generator.dims": (1, 8192),
    "generator.heads": (1, 512),
    "generator.enc_depths": (1, 256),
    "generator.dec_depths": (0, 256),
    "generator.window": (1, 256),
    "generator.mlp_ratio": (0.0625, 64),
    "discriminator.in_channels": (1, 256),
    "discriminator.dim": (1, 8192),
    "discriminator.patch": (2, 1024),
    "discriminator.depth": (1, 256),
    "discriminator.heads": (1, 512),
    "discriminator.mlp_ratio": (0.0625, 64),
    "loss.pixel_weight": (0, 1e6),
    "loss.msssim_weight": (0, 1e6),
    "loss.adversarial_weight": (0, 1e6),
    "loss.feature_matching_weight": (0, 1e6),
    "loss.lpips_weight": (0, 1e6),
    "loss.r1_weight": (0, 1e6),
    "loss.r1_every": (1, 1_000_000),
    "data.val_holdout": (0, INF),
    "data.val_limit": (0, INF),
    "data.val_size": (0, 1_000_000),
    "data.crop": (1, 100_000),
    "data.batch": (1, 1_000_000),
    "data.max_images": (0, INF),
    "data.min_size": (0, 1_000_000),
    "data.workers": (0, 1024),
    "train.steps": (0, 10**12),
    "train.adversarial_steps": (0, 10**12),
    "train.lr": (1e-12, 10),
    "train.lr_min": (0, 10),
    "train.warmup": (0, 10**12),
    "train.lr_d": (1e-12, 10),
    "train.lr_adversarial": (1e-6, 100),
    "train.betas": (0, 0.999999),
    "train.weight_decay": (0, 100),
    "train.grad_clip": (0, 1e9),
    "train.ema_decay": (0, 1),
    "train.ema_start": (0, 10**12),
    "train.val_every": (1, 10**12),
    "train.checkpoint_minutes": (0, 1e7),
    "train.log_every": (1, 10**12),
    "train.seed": (0, 2**31 - 1),
    "train.threads": (0, 4096),
    "train.accumulate": (1, 1_000_000),
    "train.minutes": (0, 1e7),
}

DIFFAUGMENT_OPS = ("translation", "cutout", "crop")  # vitrestore/augment.py's AUGMENTS (a test keeps them equal)

# the parameters of the degradation ops a `restore` pipeline names (vitrestore/ops/pipeline.py's
# OPS; a test keeps every numeric field covered): pixel values on the 0-255 scale, sizes in px
_SIGMA = (0, 255)
_SHARE = (0, 1)
_KERNEL = (3, 255)
OP_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "gaussian_blur": {"sigma_min": (0.01, 100), "sigma_max": (0.01, 100), "aniso_prob": _SHARE, "kernel": _KERNEL},
    "motion_blur": {"length_min": (0, 255), "length_max": (0, 255), "kernel": _KERNEL},
    "defocus_blur": {"radius_min": (0, 127), "radius_max": (0, 127), "kernel": _KERNEL},
    "resample": {"scale_min": (0.01, 4), "scale_max": (0.01, 4)},
    "gaussian_noise": {"sigma_min": _SIGMA, "sigma_max": _SIGMA},
    "poisson_noise": {"gain_max": _SHARE, "read_max": _SIGMA},
    "correlated_noise": {"sigma_min": _SIGMA, "sigma_max": _SIGMA, "gray_prob": _SHARE, "grain_max": (1, 64)},
    "camera_noise": {"shot_min": (1e-6, 1), "shot_max": (1e-6, 1), "read_jitter": (0, 10), "shrink_prob": _SHARE,
                     "shrink_min": (0.05, 1)},
    "jpeg": {"quality_min": (0, 100), "quality_max": (0, 100)},
    "color_jitter": {"brightness": _SHARE, "contrast": _SHARE, "saturation": _SHARE},
    "holes": {"count_min": (0, 256), "count_max": (1, 256), "size_min": _SHARE, "size_max": _SHARE, "fill": _SHARE},
}
OP_CHOICES: dict[str, dict[str, tuple]] = {
    "resample": {"modes": ("area", "bilinear", "bicubic")},
    "quantize": {"bits": (8, 16)},
}


def _fmt(v: float) -> str:
    return "no limit" if v == INF else f"{v:g}"


def _check_number(key: str, value: Any, source: str) -> None:
    lo, hi = RANGES[key]
    if not (lo <= value <= hi):  # also false for NaN
        raise ValueError(f"{source}: {key}: must be between {_fmt(lo)} and {_fmt(hi)}, got {value!r}")


def _check_item(key: str, value: Any, bounds: tuple[float, float], source: str) -> None:
    """One number of an options field: a number (a bool is not one), finite, within `bounds`."""
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source}: {key}: must be a number, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{source}: {key}: must be between {_fmt(lo)} and {_fmt(hi)}, got {value!r}")


def check_fields(obj: Any, ranges: dict[str, tuple[float, float]], source: str, prefix: str,
                 choices: dict[str, tuple] | None = None) -> None:
    """Raise ValueError ('<source>: <prefix><field>: <problem>', one line) for a field of the
    dataclass instance `obj` outside its range (`ranges`) or its choices (`choices`): tuple fields
    item by item, and must not be empty; and for any `<x>_min` above its `<x>_max`."""
    names = [f.name for f in dataclasses.fields(obj)]
    for name in names:
        key, value = prefix + name, getattr(obj, name)
        items = value if isinstance(value, tuple) else (value,)
        if isinstance(value, tuple) and not value and (name in ranges or name in (choices or {})):
            raise ValueError(f"{source}: {key}: must not be empty")
        if choices and name in choices:
            allowed = choices[name]
            for v in items:
                if isinstance(v, bool) or v not in allowed:
                    raise ValueError(f"{source}: {key}: must be one of {', '.join(map(str, allowed))}, got {v!r}")
        if name in ranges:
            for v in items:
                _check_item(key, v, ranges[name], source)
    for name in names:
        high = name[: -len("_min")] + "_max" if name.endswith("_min") else None
        if high in names and getattr(obj, name) > getattr(obj, high):
            raise ValueError(f"{source}: {prefix}{name}: must not exceed {prefix}{high} ({getattr(obj, high)!r}), "
                             f"got {getattr(obj, name)!r}")


def check_values(cfg: Any, source: str) -> None:
    """Raise ValueError (one line, key and file named) for any value out of its range or
    choices, and for generator/discriminator shapes that cannot be built."""
    for section in ("generator", "discriminator", "loss", "data", "train"):
        sub = getattr(cfg, section)
        for f in dataclasses.fields(sub):
            key, value = f"{section}.{f.name}", getattr(sub, f.name)
            if key in RANGES:
                for v in value if isinstance(value, tuple) else (value,):
                    _check_number(key, v, source)
    _check_shapes(cfg, source)


def _check_shapes(cfg: Any, source: str) -> None:
    g, d, t = cfg.generator, cfg.discriminator, cfg.train
    levels = len(g.dims)
    if not levels:
        raise ValueError(f"{source}: generator.dims: needs at least one level")
    for key in ("heads", "enc_depths"):
        if len(getattr(g, key)) != levels:
            raise ValueError(f"{source}: generator.{key}: needs one entry per level of generator.dims "
                             f"({levels}), got {list(getattr(g, key))}")
    if len(g.dec_depths) != levels - 1:
        raise ValueError(f"{source}: generator.dec_depths: needs one entry fewer than generator.dims "
                         f"({levels - 1}), got {list(g.dec_depths)}")
    for i, (dim, heads) in enumerate(zip(g.dims, g.heads)):
        if dim % heads:
            raise ValueError(f"{source}: generator.heads: {heads} heads do not divide level {i}'s "
                             f"dimension {dim} (generator.dims)")
    if d.dim % d.heads:
        raise ValueError(f"{source}: discriminator.heads: {d.heads} heads do not divide discriminator.dim {d.dim}")
    if d.patch & (d.patch - 1):
        raise ValueError(f"{source}: discriminator.patch: must be a power of two, got {d.patch}")
    ops = [p.strip() for p in cfg.loss.diffaugment.split(",") if p.strip()]
    unknown = [p for p in ops if p not in DIFFAUGMENT_OPS]
    if unknown:
        raise ValueError(f"{source}: loss.diffaugment: unknown op {unknown[0]!r} (known: {', '.join(DIFFAUGMENT_OPS)}; "
                         f"comma-separated, or empty for none)")
    if t.steps + t.adversarial_steps < 1:
        raise ValueError(f"{source}: train.steps: train.steps + train.adversarial_steps must be at least 1")
    if t.lr_min > t.lr:
        raise ValueError(f"{source}: train.lr_min: must not exceed train.lr ({t.lr:g}), got {t.lr_min:g}")
