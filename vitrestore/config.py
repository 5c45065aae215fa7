"""Typed configuration: frozen dataclasses loaded from YAML.

    cfg = load_config("configs/denoise.yaml", ["train.steps=1000", "data.crop=96"])

The dataclasses below are the one place for defaults. A YAML file may name a `base:` file
(relative to itself) that it extends; mappings merge key by key. Unknown or mistyped keys,
closed choices (`Literal` fields) outside their choices, and values outside the range their
field declares (`bounded`, vitrestore/fields.py) are errors naming the key and the file, raised
when the config is loaded. Given
the task table (`load_config(..., task_lookup=vitrestore.tasks.get_task)`), the loader also
builds the task from `task_options`, so its options are checked there too (types, ranges and
choices: `check_options`).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from .backbones import BACKBONES
from .fields import INF, bounded, check_fields


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and the file."""


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator network: `arch` names it (vitrestore/backbones.py; "uvit", the U-shaped
    conditional ViT of vitrestore/nn/generator.py, whose sizes the fields below give). The
    condition channels and the scale are not here: the task gives them to the builder."""

    arch: str = "uvit"
    in_channels: int = bounded(3, 1, 64)
    out_channels: int = bounded(3, 1, 64)
    stem_channels: int = bounded(16, 1, 4096)
    # token width per level: 1/s, 1/2s, 1/4s of the input (s = patch_stride)
    dims: tuple[int, ...] = bounded((32, 64, 128), 1, 8192)
    heads: tuple[int, ...] = bounded((1, 2, 4), 1, 512)
    enc_depths: tuple[int, ...] = bounded((2, 2, 6), 1, 256)  # the last level is the bottleneck
    dec_depths: tuple[int, ...] = bounded((1, 2), 0, 256)  # decoder blocks, one entry per level but the last
    window: int = bounded(8, 1, 256)
    mlp_ratio: float = bounded(2.0, 0.0625, 64)
    patch_stride: Literal[1, 2, 4] = 2  # tokens at 1/2 of the input resolution (2), full (1) or 1/4 (4)
    # every token upsampling (decoder levels, tokens -> pixels): "shuffle" (conv + pixel shuffle,
    # learns sub-token detail) or "bilinear" (interpolate, then conv: nothing periodic in flat areas)
    token_upsample: Literal["shuffle", "bilinear"] = "shuffle"
    residual: bool = True


@dataclass(frozen=True)
class DiscriminatorConfig:
    """PatchGAN-style ViT discriminator (see vitrestore/nn/discriminator.py)."""

    in_channels: int = bounded(6, 1, 256)  # condition image (+ extra channels) and candidate, concatenated
    dim: int = bounded(64, 1, 8192)
    patch: int = bounded(8, 2, 1024)  # one logit per patch x patch pixels
    depth: int = bounded(2, 1, 256)
    heads: int = bounded(4, 1, 512)
    mlp_ratio: float = bounded(2.0, 0.0625, 64)
    spectral_norm: bool = True  # improved spectral norm (ViTGAN): W * sigma(W_init) / sigma(W)


@dataclass(frozen=True)
class LossConfig:
    pixel: Literal["charbonnier", "l1", "l2"] = "charbonnier"
    pixel_weight: float = bounded(1.0, 0, 1e6)
    msssim_weight: float = bounded(0.0, 0, 1e6)
    adversarial: Literal["nonsaturating", "hinge", "wgan-gp"] = "nonsaturating"
    adversarial_weight: float = bounded(0.005, 0, 1e6)
    feature_matching_weight: float = bounded(0.0, 0, 1e6)
    lpips_weight: float = bounded(0.0, 0, 1e6)
    lpips_net: Literal["alex", "vgg"] = "alex"
    r1_weight: float = bounded(1.0, 0, 1e6)  # R1 penalty for nonsaturating/hinge; GP weight for wgan-gp
    r1_every: int = bounded(4, 1, 1_000_000)  # lazy regularisation
    diffaugment: str = "translation,cutout"


@dataclass(frozen=True)
class DataConfig:
    train: tuple[str, ...] = ()  # folders of clean images (searched recursively)
    val: str | None = None  # folder of clean validation images
    val_holdout: int = bounded(0, 0, INF)  # or: hold out the last N training images (sorted by path) for validation
    val_limit: int = bounded(8, 0, INF)  # at most this many validation images
    val_size: int = bounded(256, 0, 1_000_000)  # centre crop of validation images (0 = whole image)
    crop: int = bounded(64, 1, 100_000)
    batch: int = bounded(16, 1, 1_000_000)
    max_images: int = bounded(0, 0, INF)  # 0 = all
    # skip training images smaller than this on either side (0 = all must fit the crop)
    min_size: int = bounded(0, 0, 1_000_000)
    input: str | None = None  # paired data: degraded inputs matched by name to the data.train targets
    cache: bool = True  # decode the training images once into memory (false: decode at every draw)
    # worker processes that build batches ahead of the model (0 = in the main process)
    workers: int = bounded(0, 0, 1024)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = bounded(10000, 0, 10**12)  # pixel-loss stage
    adversarial_steps: int = bounded(0, 0, 10**12)  # adversarial stage after it
    lr: float = bounded(4e-4, 1e-12, 10)
    lr_min: float = bounded(1e-6, 0, 10)
    warmup: int = bounded(500, 0, 10**12)
    lr_d: float = bounded(1e-4, 1e-12, 10)
    # the generator's lr in the adversarial stage, as a share of lr (constant)
    lr_adversarial: float = bounded(0.25, 1e-6, 100)
    betas: tuple[float, float] = bounded((0.9, 0.99), 0, 0.999999)
    weight_decay: float = bounded(0.0, 0, 100)
    grad_clip: float = bounded(1.0, 0, 1e9)
    ema_decay: float = bounded(0.999, 0, 1)
    ema_start: int = bounded(2000, 0, 10**12)
    val_every: int = bounded(1000, 1, 10**12)
    checkpoint_minutes: float = bounded(4.0, 0, 1e7)
    log_every: int = bounded(100, 1, 10**12)
    seed: int = bounded(0, 0, 2**31 - 1)
    threads: int = bounded(0, 0, 4096)  # torch intra-op threads (0 = torch default)
    out: str = "runs/default"
    init_weights: str | None = None  # start the generator from these weights (shipped name or file)
    # gradient accumulation: data.batch is split into this many micro-batches
    accumulate: int = bounded(1, 1, 1_000_000)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast; CUDA only, a CPU trains in fp32
    minutes: float = bounded(0.0, 0, 1e7)  # wall-clock budget: the step schedule is stretched over it (0 = steps only)


@dataclass(frozen=True)
class Config:
    task: str = "denoise"
    task_options: dict[str, Any] = field(default_factory=dict)  # validated by the task
    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    loss: LossConfig = LossConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    source: str = "<defaults>"  # the file it was loaded from, for messages


def merge(base: dict, over: dict) -> dict:
    """`over` merged into `base` key by key (nested mappings merge; anything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML mapping, following `base:` links (relative to the file)."""
    path = Path(path).expanduser().resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'base:' chain")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_reason(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = data.pop("base", None)
    if base is None:
        return data
    return merge(read_yaml(path.parent / base, seen + (path,)), data)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """One line from a YAML error: what is wrong and where."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def apply_override(raw: dict, override: str, source: str) -> dict:
    """Apply `a.b=value` (value parsed as YAML) to a raw mapping; returns a new mapping."""
    if "=" not in override:
        raise ConfigError(f"{source}: override {override!r} is not of the form key=value")
    key, text = override.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"{source}: override {override!r}: {key.strip()!r} is not a key (like train.steps)")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: --set {key.strip()}: {text!r} is not a valid YAML value "
                          f"({getattr(exc, 'problem', None) or 'parse error'})") from None
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    return merge(raw, nested)


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:  # a closed choice: the loader names the key, the file and the choices
        if value in args and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key}: must be one of {', '.join(str(a) for a in args)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, source)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, source, prefix=key + ".")
    if origin is tuple:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, key, source) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{source}: '{key}' must have {len(args)} items, got {value!r}")
        return tuple(_coerce(a, v, key, source) for a, v in zip(args, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{source}: '{key}' has an unsupported type {tp}")


def build_dataclass(cls: type, data: Any, source: str, prefix: str = ""):
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise ConfigError."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or 'config'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known here: {known})")
    kwargs = {name: _coerce(hints[name], value, prefix + name, source) for name, value in data.items()}
    return cls(**kwargs)


# generator keys of earlier versions, set by the task since (its condition channels; the
# upscale task's task_options.scale): every task overwrote them, so weights, checkpoints and
# configs that hold them still load, the value dropped as it always was; a value outside the
# range the key had is still an error
SET_BY_THE_TASK = {"cond_channels": (0, 64), "upscale": (1, 16)}


def upgrade_generator(section: Any, source: str = "<config>") -> Any:
    """A `generator` mapping without the keys the task sets now (SET_BY_THE_TASK); ConfigError
    (one line) where one holds no whole number in the range it had."""
    if not isinstance(section, dict) or not set(section) & set(SET_BY_THE_TASK):
        return section
    out = dict(section)
    for key, (lo, hi) in SET_BY_THE_TASK.items():
        if key in out:
            value = out.pop(key)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"{source}: generator.{key}: must be between {lo} and {hi} (the task sets it "
                                  f"now; the key may be left out), got {value!r}")
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                raw: dict | None = None, source: str | None = None,
                task_lookup: Callable[[str], Any] | None = None) -> Config:
    """Load a Config from YAML (or a raw mapping) plus `a.b=value` overrides; `source` names
    it in messages (default: the path). With `task_lookup` (task name -> Task class) the task
    and its options are checked too (`check_task`)."""
    source = source or (str(path) if path is not None else "<config>")
    data = read_yaml(Path(path)) if path is not None else dict(raw or {})
    for item in overrides:
        data = apply_override(data, item, source)
    data.pop("source", None)
    if "generator" in data:
        data["generator"] = upgrade_generator(data["generator"], source)
    cfg = dataclasses.replace(build_dataclass(Config, data, source), source=source)
    if cfg.generator.arch not in BACKBONES:
        raise ConfigError(f"{source}: generator.arch: must be one of {', '.join(sorted(BACKBONES))}, "
                          f"got {cfg.generator.arch!r}")
    try:
        check_values(cfg, source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if task_lookup is not None:
        check_task(cfg, task_lookup)
    return cfg


def check_task(cfg: Config, task_lookup: Callable[[str], Any]) -> None:
    """ConfigError (one line, key and file named) when `task` names no task or the task does not
    accept `task_options`: the task is built from them as training will build it, and dropped."""
    try:
        cls = task_lookup(cfg.task)
    except KeyError as exc:
        raise ConfigError(f"{cfg.source}: task: {exc.args[0] if exc.args else cfg.task}") from None
    try:
        cls.from_config(cfg)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{cfg.source}: task_options: {exc}") from None


def check_options(options: Any, source: str, prefix: str = "task_options.") -> None:
    """ConfigError ('<source>: task_options.<key>: <problem>') for a task option (or a pipeline
    op's parameter) outside the range or choices its field declares (vitrestore/fields.py), not
    finite, or a `<x>_min` above its `<x>_max`."""
    try:
        check_fields(options, source, prefix)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


SECTIONS = ("generator", "discriminator", "loss", "data", "train")
DIFFAUGMENT_OPS = ("translation", "cutout", "crop")  # vitrestore/augment.py's AUGMENTS (a test keeps them equal)


def check_values(cfg: Any, source: str) -> None:
    """Raise ValueError (one line, key and file named) for any value of a section out of the
    range or choices its field declares, and for generator/discriminator shapes that cannot be
    built."""
    for section in SECTIONS:
        check_fields(getattr(cfg, section), source, f"{section}.", empty_ok=True)  # a one-level generator has no dec_depths
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


def config_to_dict(cfg: Any) -> dict:
    """A plain, YAML/JSON-ready mapping of a config dataclass (tuples become lists)."""
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))
