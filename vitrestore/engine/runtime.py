"""The inference runtime behind the Python API: a task's generator, its weights and how a
request runs (tiles, ensembles, conditions, compositing, alpha), on either backend. It knows
tasks only through the Task interface; `vitrestore.tasks.load_model` hands it the task table.

    from vitrestore.tasks import load_model
    model = load_model("denoise")               # or load_model("runs/x/weights.safetensors")
    clean = model(noisy_uint8_array)            # (H, W, C) uint8/uint16/float -> same dtype
    clean = model(noisy_tensor, sigma=25)       # (C, H, W) or (B, C, H, W) float in [0, 1]

Grayscale inputs are run through the colour network with replicated channels and averaged
back; alpha is handed to the task's `alpha` hook (kept as is by default); 16-bit stays 16-bit.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import ConfigError, load_config
from ..nn.generator import Generator
from ..task import Task, as_unit
from ..weights import WeightsError, load_weights, split_task_state
from .checkpoint import state_dict_error
from .infer import tiled_forward
from .nets import OrtNet, TorchNet, cached_export, pick_backend


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA device is available")
    return torch.device(device)


def _is_map(v: Any) -> bool:
    return torch.is_tensor(v) and v.dim() >= 2


def _dihedral(t: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """Transform k of the 8 flips/rotations of (..., H, W) (0 = identity, 1 = horizontal flip,
    2-3 = vertical flip, both; 4-7 = the same after a transpose), or its inverse."""
    if k == 0:
        return t
    flips = [d for d, on in ((-1, k & 1), (-2, k & 2)) if on]
    if inverse:
        t = t.flip(flips) if flips else t
        return t.transpose(-2, -1) if k & 4 else t
    t = t.transpose(-2, -1) if k & 4 else t
    return t.flip(flips) if flips else t


def _sliced(request: dict, sl: tuple[slice, slice]) -> dict:
    """The request for one tile: image-sized tensors (e.g. a mask) cut to the tile."""
    return {k: (v[..., sl[0], sl[1]] if _is_map(v) else v) for k, v in request.items()}


class Model:
    """A task's generator ready for inference. `backend`: 'torch', 'onnx' (ONNX Runtime, CPU) or
    'auto' (torch; $VITRESTORE_BACKEND overrides the default); `precision`: 'auto' (fp16 on CUDA,
    bf16 on a CPU with bfloat16 units, else fp32), 'fp32', 'fp16' (CUDA), 'bf16'."""

    def __init__(self, task: Task, generator: Generator, card: dict, device: torch.device,
                 tile: int = 512, overlap: int = 32, ensemble: int = 1, backend: str | None = None,
                 precision: str = "auto", config: dict | None = None, name: str = "model"):
        self.task, self.generator, self.card, self.device = task, generator.eval().to(device), card, device
        self.tile, self.overlap = tile, overlap
        if ensemble not in (1, 2, 4, 8):
            raise ValueError(f"ensemble must be 1, 2, 4 or 8 (flips/rotations averaged), got {ensemble}")
        self.ensemble = ensemble
        self.scale = generator.cfg.upscale
        self.config = config or {"generator": vars(generator.cfg)}
        self.tiles_per_call = 4 if device.type == "cuda" else 1  # a GPU is busier with several tiles at once
        self.progress = None  # optional progress(done, total) per network pass (the studio's progress bar, cancel)
        self.backend = pick_backend(backend or os.environ.get("VITRESTORE_BACKEND", "auto"), device, precision)
        self.net = (OrtNet(self.generator, cached_export(self.generator, self.config, card, self.task_doc(), name))
                    if self.backend == "onnx" else TorchNet(self.generator, device, precision))

    def task_doc(self) -> str:
        """The task's inference contract in words, for exported files."""
        return f"{self.task.name}: {self.task.contract or 'no cond; the output has the input size.'}"

    @classmethod
    def from_weights(cls, name_or_path: str | Path, task_lookup: Callable[[str], type[Task]], device: str = "auto",
                     **kw: Any) -> "Model":
        """The model in a weights file (or shipped name); `task_lookup` maps its config's task
        name to the Task class (vitrestore.tasks.get_task)."""
        state, config, card = load_weights(name_or_path)
        # only what inference needs: training-only keys may differ between versions
        try:
            cfg = load_config(raw={k: config[k] for k in ("task", "task_options", "generator") if k in config})
            task = task_lookup(cfg.task).from_config(cfg)
            gen = Generator(task.generator_config(cfg.generator))
        except (ConfigError, KeyError, ValueError, TypeError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise WeightsError(f"{name_or_path}: its config metadata is not usable ({text.replace('<config>: ', '')})"
                               ) from None
        state, task_state = split_task_state(state)
        try:
            gen.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsError(f"{name_or_path}: its tensors do not fit the model its metadata describes "
                               f"({state_dict_error(exc)})") from None
        try:
            task.load_state(task_state)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise WeightsError(f"{name_or_path}: {exc}") from None
        return cls(task, gen, card, pick_device(device), config=config, name=str(name_or_path), **kw)

    # --- tensors -----------------------------------------------------------------------------
    @torch.no_grad()
    def run_tensor(self, x: torch.Tensor, **request: Any) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] (or uint8/uint16) -> (B, 3, sH, sW) float in [0, 1], tiled.

        The input stays where it is and in its dtype; tiles are converted and moved to the
        model's device one at a time, and the task's condition is built per tile, so memory
        stays bounded by the tile size plus the output. A task may run the network its own way
        (`Task.infer`, e.g. inpainting's coarse-to-fine pass for large holes).
        """
        self.task.check_request(**request)  # a bad request fails before any pass
        out = None
        for k in range(self.ensemble):  # test-time augmentation: average over flips / rotations
            xt, rt = _dihedral(x, k), {n: (_dihedral(v, k) if _is_map(v) else v) for n, v in request.items()}
            y = _dihedral(self.task.infer(self._tiled, xt, self.tile, **rt), k, inverse=True)
            out = y if out is None else out.add_(y)
            del y
        if self.ensemble > 1:
            out.div_(self.ensemble)
        if not bool(torch.isfinite(out).all()):
            raise ValueError("the model produced NaN or infinite values (broken weights, or fp16 overflow)")
        return self.task.postprocess(out, x, **request)

    @torch.no_grad()
    def _tiled(self, x: torch.Tensor, tile: int, **request: Any) -> torch.Tensor:
        """The network over x in tiles of `tile` (0 = whole), the condition built per tile."""
        def cond(t: torch.Tensor, sl: tuple[slice, slice]):
            return self.task.condition(t, **_sliced(request, sl))

        return tiled_forward(self.net, x, cond, tile, self.overlap, self.scale, self.device,
                             tiles_per_call=self.tiles_per_call, progress=self.progress)

    def run_channels(self, x: torch.Tensor, **request: Any) -> torch.Tensor:
        """(B, C, H, W) with C in 1..4 (gray, gray+alpha, RGB, RGBA) in [0, 1] (or uint8/uint16)
        -> same layout, float in [0, 1]."""
        c = x.shape[1]
        if c not in (1, 2, 3, 4):
            raise ValueError(f"expected 1-4 channels, got {c}")
        color, alpha = (x[:, :1], x[:, 1:]) if c in (1, 2) else (x[:, :3], x[:, 3:])
        rgb = color.expand(-1, 3, -1, -1) if color.shape[1] == 1 else color
        out = self.run_tensor(rgb, **request).cpu()
        if color.shape[1] == 1:
            out = out.mean(1, keepdim=True)
        if alpha.shape[1]:
            out = torch.cat([out, self.task.alpha(as_unit(alpha), self.scale)], 1)
        return out

    # --- arrays ------------------------------------------------------------------------------
    @staticmethod
    def _peak(a: np.ndarray) -> float:
        if a.dtype == np.uint8:
            return 255.0
        if a.dtype == np.uint16:
            return 65535.0
        if np.issubdtype(a.dtype, np.floating):
            return 1.0
        raise ValueError(f"unsupported array dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")

    def run_arrays(self, images: list[np.ndarray], **request: Any) -> list[np.ndarray]:
        """Several (H, W, C) arrays of one shape and dtype in one batch -> the results, same dtype."""
        first = images[0]
        peak = self._peak(first)
        if any(a.shape != first.shape or a.dtype != first.dtype for a in images):
            raise ValueError("run_arrays needs arrays of one shape and dtype")
        # (B, H, W, C) -> (B, C, H, W), a view in the array's own dtype (converted tile by tile)
        a = np.ascontiguousarray(np.stack(images) if len(images) > 1 else first[None])
        x = torch.from_numpy(a).permute(0, 3, 1, 2)
        if peak == 1.0:
            x = x.float()
        out = self.run_channels(x, **request)
        del x
        out = out.permute(0, 2, 3, 1)  # (B, sH, sW, C)
        if peak == 1.0:
            res = out.numpy().astype(first.dtype)
        else:
            res = out.mul_(peak).round_().clamp_(0, peak).to(torch.uint8 if peak == 255.0 else torch.int32).numpy()
            res = res if peak == 255.0 else res.astype(np.uint16)
        return list(res)

    def __call__(self, image: np.ndarray | torch.Tensor, **request: Any):
        if isinstance(image, torch.Tensor):
            batched = image.dim() == 4
            x = image if batched else image.unsqueeze(0)
            out = self.run_channels(x.float(), **request)
            return out if batched else out[0]
        a = np.asarray(image)
        two_d = a.ndim == 2
        res = self.run_arrays([a[:, :, None] if two_d else a], **request)[0]
        return res[:, :, 0] if two_d else res

