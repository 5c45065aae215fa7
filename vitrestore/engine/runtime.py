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

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import request as requests
from ..backbones import build_generator
from ..config import ConfigError, GeneratorConfig, load_config
from ..task import Task, as_unit
from ..weights import WeightsError, load_weights, split_task_state
from .checkpoint import state_dict_error
from .api_inputs import check_tile, image_array, image_tensor, request_mask
from .infer import tiled_forward
from .nets import ENV_CHOICES, TorchNet, check_cache_dir, env_choice, onnx_net, pick_backend


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' (CUDA when there is one, else the CPU), 'cpu', 'cuda' or 'cuda:N' -> the device; a
    device this machine does not have is a ValueError in one line."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device!r} is not a device (use auto, cpu or cuda)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} asked for, but no CUDA device is available (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def check_environment(device: str = "auto", backend: str | None = None) -> None:
    """Fail at start, in one line (ValueError), for settings that cannot work: $VITRESTORE_BACKEND
    or $VITRESTORE_CPU_BF16 outside their allowed values (empty counts as unset), a device this
    machine does not have, a backend it cannot run there, and for the ONNX backend a
    $VITRESTORE_CACHE that is a file. Cheap (no model is read); `Model.from_weights` calls it first."""
    for var in ENV_CHOICES:
        env_choice(var)
    dev = pick_device(device)
    chosen = pick_backend(backend or env_choice("VITRESTORE_BACKEND") or "auto", dev, "fp32")
    if chosen == "onnx":
        check_cache_dir()


# a window's attention is (window^2)^2 per head, and its relative-position index as much in int64:
# 64 (4096 tokens, 134 MB of index) is far above any trained model (8 shipped) and still runs
MAX_WINDOW = 64


def _generator_shapes(cfg: GeneratorConfig, cond_channels: int, scale: int) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the generator a config describes, built on the meta device (no
    memory, whatever the sizes)."""
    with torch.device("meta"):
        gen = build_generator(cfg, cond_channels, scale)
    return {k: tuple(t.shape) for k, t in gen.state_dict().items()}


def check_generator_tensors(name: str | Path, cfg: GeneratorConfig, state: dict[str, torch.Tensor],
                            cond_channels: int = 0, scale: int = 1) -> None:
    """WeightsError (one line naming the file and the key) unless the file's tensors are the ones
    the config's generator needs: the same names and shapes, floating point. Checked on the
    meta device, so it allocates nothing; a config declaring more blocks than the file has
    tensors, or a window beyond MAX_WINDOW, fails before even that (the U-ViT's sizes)."""
    blocks = sum(cfg.enc_depths) + sum(cfg.dec_depths) if cfg.arch == "uvit" else 0
    if blocks > len(state):  # every block has a dozen tensors: a config claiming more is not this file's
        raise WeightsError(f"{name}: its config declares {blocks} transformer blocks (generator.enc_depths, "
                           f"dec_depths) but the file holds only {len(state)} tensors")
    if cfg.arch == "uvit" and cfg.window > MAX_WINDOW:
        raise WeightsError(f"{name}: generator.window = {cfg.window} is above {MAX_WINDOW}, the largest that runs "
                           f"(attention memory grows as window^4)")
    try:
        expected = _generator_shapes(cfg, cond_channels, scale)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"{name}: its config metadata is not usable ({exc})") from None
    missing = [k for k in expected if k not in state]
    if missing:
        raise WeightsError(f"{name}: tensor {missing[0]} is missing ({len(missing)} missing in all; "
                           f"the file does not fit its own config)")
    extra = [k for k in state if k not in expected]
    if extra:
        raise WeightsError(f"{name}: tensor {extra[0]} is not part of the model its config describes "
                           f"({len(extra)} unexpected in all)")
    for k, shape in expected.items():
        t = state[k]
        if tuple(t.shape) != shape:
            raise WeightsError(f"{name}: tensor {k} has shape {tuple(t.shape)}, but its config needs {shape}")
        if not t.is_floating_point():
            raise WeightsError(f"{name}: tensor {k} is {str(t.dtype).replace('torch.', '')}, not floating point")


def _to_levels(out: torch.Tensor, peak: float) -> torch.Tensor:
    """Float [0, 1] (owned: changed in place) -> sample levels 0..peak, rounded: uint8 for 8 bits
    (no wider copy of a large output), else int32 (torch computes little in uint16)."""
    return out.mul_(peak).round_().clamp_(0, peak).to(torch.uint8 if peak == 255.0 else torch.int32)


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


def _sliced(request: dict, maps: tuple[str, ...], sl: tuple[slice, slice]) -> dict:
    """The request for one tile: the maps its task's Request declares (`maps`: a mask, a noise
    map) cut to the tile, the rest as it is."""
    return {k: (v[..., sl[0], sl[1]] if k in maps and _is_map(v) else v) for k, v in request.items()}


class Model:
    """A task's generator ready for inference. `backend`: 'torch', 'onnx' (ONNX Runtime, CPU) or
    'auto' (torch; $VITRESTORE_BACKEND overrides the default); `precision`: 'auto' (fp16 on CUDA,
    bf16 on a CPU with bfloat16 units, else fp32), 'fp32', 'fp16' (CUDA), 'bf16'."""

    def __init__(self, task: Task, generator: nn.Module, card: dict, device: torch.device,
                 tile: int = 512, overlap: int = 32, ensemble: int = 1, backend: str | None = None,
                 precision: str = "auto", config: dict | None = None, name: str = "model"):
        self.task, self.generator, self.card, self.device = task, generator.eval().to(device), card, device
        self.tile, self.overlap = check_tile(tile), overlap
        if ensemble not in (1, 2, 4, 8):
            raise ValueError(f"ensemble must be 1, 2, 4 or 8 (flips/rotations averaged), got {ensemble}")
        self.ensemble = ensemble
        self.scale = generator.scale
        self.config = config or {"generator": vars(generator.cfg)}
        self.tiles_per_call = 4 if device.type == "cuda" else 1  # a GPU is busier with several tiles at once
        self.progress = None  # optional progress(done, total) per network pass (the studio's progress bar, cancel)
        self.backend = pick_backend(backend or env_choice("VITRESTORE_BACKEND") or "auto", device, precision)
        self.precision, self.name = precision, name
        self.net = (onnx_net(self.generator, self.config, card, self.task_doc(), name)
                    if self.backend == "onnx" else TorchNet(self.generator, device, precision))

    def with_generator(self, generator: nn.Module, backend: str | None = None) -> "Model":
        """The same model (task, card, tiles, ensemble, precision, and backend unless given) around
        another generator of the same config (e.g. `--adapt`'s fine-tuned copy)."""
        m = Model(self.task, generator, self.card, self.device, tile=self.tile, overlap=self.overlap,
                  ensemble=self.ensemble, backend=backend or self.backend, precision=self.precision, config=self.config,
                  name=f"{self.name} (adapted)")
        m.progress = self.progress
        return m

    def adapted(self, images: list[Any], seconds: float | None = 60.0, steps: int | None = None, seed: int = 0,
                quiet: bool = True, **request: Any) -> tuple["Model", Any]:
        """`--adapt` from Python: (the model to process these images with, engine/adapt.py's
        AdaptResult). `images`: arrays or tensors as `__call__` takes them (one image each), pooled
        as the CLI pools a folder; `steps` instead of `seconds` is the repeatable form; `request`
        as for the images (e.g. mask= for inpaint, the same for all). This model is never changed.

            adapted, result = model.adapted([photo1, photo2], seconds=120)
            print(result.line()); clean = adapted(photo1)
        """
        from .adapt import AdaptSettings, adapt, pooled_samples

        settings = AdaptSettings(seconds=seconds or 0.0, steps=steps, seed=seed)
        settings.check()
        self.task.check_request(**request)

        def load(image: Any) -> tuple[torch.Tensor, dict]:
            x = image_tensor(image) if torch.is_tensor(image) else \
                torch.from_numpy(np.ascontiguousarray(image_array(image))).permute(0, 3, 1, 2)  # (1, C, H, W)
            if x.shape[0] != 1:
                raise ValueError(f"adapted() takes one image per list item, got a batch of {x.shape[0]}")
            req = dict(request)
            if req.get("mask") is not None:
                req["mask"] = request_mask(req["mask"], 1, x.shape[2], x.shape[3])
            return x, req

        samples = pooled_samples(list(images), load, settings)
        return adapt(self, samples, settings, quiet=quiet)

    def task_doc(self) -> str:
        """The task's inference contract in words, for exported files."""
        return f"{self.task.name}: {self.task.contract or 'no cond; the output has the input size.'}"

    @classmethod
    def from_weights(cls, name_or_path: str | Path, task_lookup: Callable[[str], type[Task]], device: str = "auto",
                     **kw: Any) -> "Model":
        """The model in a weights file (or shipped name); `task_lookup` maps its config's task
        name to the Task class (vitrestore.tasks.get_task)."""
        check_environment(device, kw.get("backend"))  # a bad setting fails before any file is read
        state, config, card = load_weights(name_or_path)
        # only what inference needs: training-only keys may differ between versions
        try:
            cfg = load_config(raw={k: config[k] for k in ("task", "task_options", "generator") if k in config})
            task = task_lookup(cfg.task).from_config(cfg)
        except (ConfigError, KeyError, ValueError, TypeError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise WeightsError(f"{name_or_path}: its config metadata is not usable ({text.replace('<config>: ', '')})"
                               ) from None
        state, task_state = split_task_state(state)
        # before a byte of the network is allocated
        check_generator_tensors(name_or_path, cfg.generator, state, task.cond_channels, task.scale)
        gen = build_generator(cfg.generator, task.cond_channels, task.scale)
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
        stays bounded by the tile size plus the output. The task says which passes of the
        network an image needs (`Task.passes`: one by default; e.g. inpainting's coarse-to-fine
        passes for large holes) and the runtime runs them, then the task's `postprocess`.
        """
        self.task.check_request(**request)  # a misspelled or bad option fails before any pass
        out = None
        maps = requests.maps(self.task.Request)  # the request's image-sized keys (a mask): flipped with the image
        for k in range(self.ensemble):  # test-time augmentation: average over flips / rotations
            xt, rt = _dihedral(x, k), {n: (_dihedral(v, k) if n in maps and _is_map(v) else v)
                                       for n, v in request.items()}
            y = _dihedral(self._passes(xt, **rt), k, inverse=True)
            out = y if out is None else out.add_(y)
            del y
        if self.ensemble > 1:
            out.div_(self.ensemble)
        if not bool(torch.isfinite(out).all()):
            raise ValueError("the model produced NaN or infinite values (broken weights, or fp16 overflow)")
        return self.task.postprocess(out, x, **request)

    def _passes(self, x: torch.Tensor, **request: Any) -> torch.Tensor:
        """The raw output for x: each network pass the task's `passes` asks for, run in turn."""
        steps = self.task.passes(x, self.tile, **request)
        try:
            step = next(steps)
            while True:
                step = steps.send(self._tiled(step.image, step.tile, **step.request))
        except StopIteration as done:
            return done.value

    @torch.no_grad()
    def _tiled(self, x: torch.Tensor, tile: int, **request: Any) -> torch.Tensor:
        """The network over x in tiles of `tile` (0 = whole), the condition built per tile."""
        maps = requests.maps(self.task.Request)
        def cond(t: torch.Tensor, sl: tuple[slice, slice]):
            return self.task.condition(t, **_sliced(request, maps, sl))

        return tiled_forward(self.net, x, cond, tile, self.overlap, self.scale, self.device,
                             tiles_per_call=self.tiles_per_call, progress=self.progress)

    def run_channels(self, x: torch.Tensor, **request: Any) -> torch.Tensor:
        """(B, C, H, W) with C in 1..4 (gray, gray+alpha, RGB, RGBA) in [0, 1] (or uint8/uint16)
        -> same layout, float in [0, 1]."""
        c = x.shape[1]
        if c not in (1, 2, 3, 4):
            raise ValueError(f"expected 1-4 channels, got {c}")
        if request.get("mask") is not None:  # numpy or torch, any of the accepted layouts
            request = {**request, "mask": request_mask(request["mask"], x.shape[0], x.shape[2], x.shape[3])}
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
        if not images:
            raise ValueError("run_arrays needs at least one image")
        if any(np.ndim(a) not in (2, 3) for a in images):
            raise ValueError(f"run_arrays takes (H, W) or (H, W, C) arrays, got shape "
                             f"{next(np.shape(a) for a in images if np.ndim(a) not in (2, 3))}")
        return self._run_checked([image_array(a)[0] for a in images], **request)  # (H, W, C), checked

    def _run_checked(self, images: list[np.ndarray], **request: Any) -> list[np.ndarray]:
        """run_arrays on arrays image_array has checked (each (H, W, C))."""
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
            res = _to_levels(out, peak).numpy().astype(first.dtype, copy=False)  # uint8 as is; int32 -> uint16
        return list(res)

    def __call__(self, image: np.ndarray | torch.Tensor, **request: Any):
        """An image array or tensor -> the result in the same layout and dtype (see
        engine/api_inputs.py for what is accepted; anything else is one ValueError)."""
        if isinstance(image, torch.Tensor):
            x = image_tensor(image)  # (B, C, H, W)
            out = self.run_channels(x, **request)
            if not x.is_floating_point():  # uint8 / uint16 in, the same out
                out = _to_levels(out, 255.0 if x.dtype == torch.uint8 else 65535.0).to(x.dtype)
            return out if image.dim() == 4 else out[0]
        a = image_array(image)  # (B, H, W, C), checked once
        res = np.stack(self._run_checked(list(a), **request))  # (B, sH, sW, C)
        ndim = np.ndim(image)
        return res if ndim == 4 else res[0] if ndim == 3 else res[0, :, :, 0]

