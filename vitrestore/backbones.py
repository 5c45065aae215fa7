"""The generator networks by name: `generator.arch` in a config picks one (default "uvit", the
U-shaped ViT every shipped model is, so weights without the key load unchanged).

A backbone is one module and its line in BACKBONES ("module:Class", imported when built, so
reading this table imports no torch). Its class is built as `Class(cfg, cond_channels, scale)`:
`cfg` the config's `generator` section (GeneratorConfig), `cond_channels` the condition channels
its task feeds beside the image, `scale` the output / input size. Called `net(x, cond)` with x
(B, in_channels, H, W) in [0, 1] and cond (B, cond_channels, H, W) or None, it returns
(B, out_channels, scale*H, scale*W), any H and W. It has the attributes the runtime, ONNX export
and training read instead of config fields:

    cfg            the GeneratorConfig it was built from
    cond_channels  as given
    scale          as given
    pad_multiple   the side multiple it pads its input to internally (1: none); tiles, ONNX
                   traces and the smallest exportable size follow it
"""
from __future__ import annotations

import importlib
from typing import Any

BACKBONES: dict[str, str] = {
    "uvit": "vitrestore.nn.generator:Generator",  # shifted-window U-ViT (nn/generator.py)
}


def backbone_class(arch: str) -> type:
    """The class `arch` names; ValueError (one line, the known names) for an unknown one."""
    try:
        module, name = BACKBONES[arch].split(":")
    except KeyError:
        raise ValueError(f"generator.arch must be one of {', '.join(sorted(BACKBONES))}, got {arch!r}") from None
    return getattr(importlib.import_module(module), name)


def build_generator(cfg: Any, cond_channels: int = 0, scale: int = 1) -> Any:
    """The network `cfg.arch` names, for a task feeding `cond_channels` and enlarging `scale` times."""
    return backbone_class(cfg.arch)(cfg, cond_channels=cond_channels, scale=scale)
