"""The network runners behind `Model`: each is a callable net(x, cond) -> output on the tile
that `tiled_forward` hands it, so tiling, ensembles, conditioning and compositing stay the same
whichever runs the network.

    TorchNet   the generator in PyTorch, optionally in half precision (autocast: fp16 or bf16
               on CUDA, bf16 on a CPU), a tile whose output is not finite rerun in fp32
    OrtNet     ONNX Runtime on the CPU, from an export cached per weights digest; inputs with a
               side at or below the pad multiple (where the traced graph does not hold) go to
               the PyTorch generator

`auto`, as measured (README, Speed): the backend is PyTorch (on a 2-core Xeon its channels-last
blocks ran 1.3x faster than ONNX Runtime's graph of them, and it needs no export); the precision
is fp16 on CUDA, bf16 on a CPU with bfloat16 units (AMX or AVX512-BF16: 1.2x (x4 SR) to 1.6x
(denoise) faster than fp32 there, 0.003 dB less on CBSD68), else fp32.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import threading
from pathlib import Path

import torch

from ..nn.generator import Generator
from .onnx_export import export_generator, generator_digest

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}
_EXPORT_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where exported graphs are kept: $VITRESTORE_CACHE, else $XDG_CACHE_HOME/vitrestore, else
    ~/.cache/vitrestore."""
    if os.environ.get("VITRESTORE_CACHE"):
        return Path(os.environ["VITRESTORE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "vitrestore"


class TorchNet:
    def __init__(self, generator: Generator, device: torch.device, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("--precision fp16 runs on CUDA only (on a CPU: fp32, or bf16 where the CPU has it)")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("--precision bf16: this GPU does not support bfloat16")
        if precision == "auto":
            precision = "fp16" if device.type == "cuda" else ("bf16" if cpu_has_bf16() else "fp32")
        self.generator, self.device, self.precision = generator, device, precision
        self.fallbacks = 0  # tiles rerun in fp32 because half precision gave non-finite values

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.precision == "fp32":
            return self.generator(x, cond)
        with torch.autocast(self.device.type, dtype=_HALF[self.precision]):
            y = self.generator(x, cond).float()
        if bool(torch.isfinite(y).all()):
            return y
        self.fallbacks += 1
        return self.generator(x, cond)


class OrtNet:
    def __init__(self, generator: Generator, onnx_path: Path, threads: int | None = None):
        import onnxruntime as ort  # noqa: PLC0415

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # errors only
        # ORT's full optimisation of the graph takes ~1 s per start: it is done once and its result
        # kept beside the export, per ONNX Runtime version and CPU (it holds CPU-specific layouts)
        optimized = onnx_path.with_name(f"{onnx_path.stem}.{_machine_key(ort.__version__)}.opt.onnx")
        if optimized.is_file():
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            path = optimized
        else:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            tmp = optimized.with_name(f".{optimized.name}.{os.getpid()}.tmp")
            so.optimized_model_filepath = str(tmp)
            path = onnx_path
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        finally:
            if path == onnx_path and Path(so.optimized_model_filepath).is_file():
                os.replace(so.optimized_model_filepath, optimized)  # complete, or not there at all
        self.generator = generator
        self.min_side = generator.multiple + 1
        self.names = [i.name for i in self.session.get_inputs()]
        self._lock = threading.Lock()  # one run at a time per session (threads share the cores anyway)

    def __call__(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if min(x.shape[-2:]) < self.min_side:  # the traced graph assumes more than one window
            with torch.no_grad():
                return self.generator(x, cond)
        feed = {"image": x.detach().cpu().float().contiguous().numpy()}
        if "cond" in self.names:
            feed["cond"] = cond.detach().cpu().float().contiguous().numpy()
        with self._lock:
            out = self.session.run(None, feed)[0]
        return torch.from_numpy(out).to(x.device)


def _machine_key(ort_version: str) -> str:
    """A short key of the ONNX Runtime version and this CPU's model and instruction sets."""
    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
        cpu += "".join(line for line in info if line.startswith(("model name", "flags")))[:4000]
    except OSError:
        pass
    return hashlib.sha256(f"{ort_version}|{cpu}".encode()).hexdigest()[:12]


def cached_export(generator: Generator, config: dict, card: dict, task_doc: str, name: str) -> Path:
    """The generator's ONNX export from the cache, made (once, atomically) when missing."""
    digest = generator_digest(generator, config)
    path = cache_dir() / "onnx" / f"{digest[:24]}.onnx"
    with _EXPORT_LOCK:  # torch.onnx.export keeps global state: one export at a time per process
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            print(f"vitrestore: exporting {name} to ONNX once for the fast CPU path (cached in {path.parent})",
                  file=sys.stderr)
            export_generator(generator, path, config, card, task_doc, digest)
    return path


def onnx_available() -> bool:
    """Whether onnx and onnxruntime are installed (found, not imported: `import onnx` alone takes
    about a second, and it is needed only to export)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AMX tiles or AVX512-BF16); elsewhere bf16 is
    emulated and many times slower than fp32. $VITRESTORE_CPU_BF16=0/1 overrides."""
    forced = os.environ.get("VITRESTORE_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    probes = [getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    try:
        return any(p() for p in probes if p is not None)
    except RuntimeError:
        return False


def pick_backend(backend: str, device: torch.device, precision: str) -> str:
    """'torch' or 'onnx' for a requested backend on a device (raises ValueError for impossible asks)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx":
        if device.type != "cpu":
            raise ValueError("--backend onnx runs on the CPU (use --device cpu, or --backend torch on CUDA)")
        if precision in _HALF:
            raise ValueError(f"--backend onnx runs in fp32, not {precision}")
        if not onnx_available():
            raise ValueError("--backend onnx needs the packages onnx and onnxruntime (pip install onnx onnxruntime)")
        return "onnx"
    return "torch"
