"""The network runners behind `Model`: each is a callable net(x, cond) -> output on the tile
that `tiled_forward` hands it, so tiling, ensembles, conditioning and compositing stay the same
whichever runs the network.

    TorchNet   the generator in PyTorch, optionally in half precision (autocast: fp16 or bf16
               on CUDA, bf16 on a CPU), a tile whose output is not finite rerun in fp32
    OrtNet     ONNX Runtime on the CPU, from an export cached per weights digest (`onnx_net`:
               a cached file that does not load or holds another digest is exported again);
               inputs with a side at or below the pad multiple (where the traced graph does not
               hold) go to the PyTorch generator

`auto`, as measured (README, Speed): the backend is PyTorch (on a 2-core Xeon its channels-last
blocks ran 1.3x faster than ONNX Runtime's graph of them, and it needs no export); the precision
is fp16 on CUDA, bf16 on a CPU with bfloat16 units (AMX or AVX512-BF16: 1.2x (x4 SR) to 1.6x
(denoise) faster than fp32 there, 0.003 dB less on CBSD68), else fp32.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import sys
import threading
from pathlib import Path

import torch

from ..nn.generator import Generator
from .onnx_export import DIGEST_KEY, export_generator, generator_digest

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}
_EXPORT_LOCK = threading.Lock()
ENV_CHOICES = {"VITRESTORE_BACKEND": BACKENDS, "VITRESTORE_CPU_BF16": ("0", "1")}


def env_choice(var: str) -> str | None:
    """$var (one of ENV_CHOICES) when set, None when unset or empty; any other value is a
    ValueError in one line naming the variable and its allowed values."""
    value = os.environ.get(var, "")
    if not value:
        return None
    if value not in ENV_CHOICES[var]:
        raise ValueError(f"${var}={value!r} is not valid: use one of {', '.join(ENV_CHOICES[var])}, or unset it")
    return value


class BrokenExport(ValueError):
    """A cached ONNX file that ONNX Runtime cannot load, or the export of other weights."""


def cache_dir() -> Path:
    """Where exported graphs are kept: $VITRESTORE_CACHE, else $XDG_CACHE_HOME/vitrestore, else
    ~/.cache/vitrestore."""
    if os.environ.get("VITRESTORE_CACHE"):
        return Path(os.environ["VITRESTORE_CACHE"]).expanduser()
    return _default_cache()


def _cache_var() -> str:
    """What set the cache folder, for messages."""
    if os.environ.get("VITRESTORE_CACHE"):
        return "$VITRESTORE_CACHE"
    return "$XDG_CACHE_HOME/vitrestore" if os.environ.get("XDG_CACHE_HOME") else "the cache folder"


def check_cache_dir() -> Path:
    """The cache folder, or ValueError in one line naming the variable and the path when it
    cannot be one (it, or a folder above it, is a file). Not writable is not checked here: a
    read-only cache that already holds the export is fine, and a write fails where it happens."""
    path = cache_dir()
    for p in (path, *path.parents):  # the nearest existing one must be a folder
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"is under {p}, a file"
                raise ValueError(f"{_cache_var()} ({path}) {where}, not a folder: point it at a folder "
                                 f"(or unset it for {_default_cache()})")
            break
    return path


def _default_cache() -> Path:
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
    def __init__(self, generator: Generator, onnx_path: Path, threads: int | None = None,
                 digest: str | None = None):
        """ONNX Runtime on `onnx_path`; with `digest`, a file that does not load or is not the
        export of that digest raises BrokenExport (the caller exports it again)."""
        import onnxruntime as ort  # noqa: PLC0415

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # errors only
        # ORT's full optimisation of the graph takes ~1 s per start: it is done once and its result
        # kept beside the export, per ONNX Runtime version and CPU (it holds CPU-specific layouts)
        optimized = onnx_path.with_name(f"{onnx_path.stem}.{_machine_key(ort.__version__)}.opt.onnx")
        self.session = None
        if optimized.is_file():
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            try:
                self.session = _open_session(ort, optimized, so, digest)
            except BrokenExport as exc:  # made again from the export below
                print(f"vitrestore: {exc}; optimising the export again", file=sys.stderr)
                with contextlib.suppress(OSError):  # a read-only cache: it is just not used
                    optimized.unlink(missing_ok=True)
        if self.session is None:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            tmp = optimized.with_name(f".{optimized.name}.{os.getpid()}.tmp")
            if os.access(onnx_path.parent, os.W_OK):  # a read-only cache: optimised anew each start
                so.optimized_model_filepath = str(tmp)
            try:
                self.session = _open_session(ort, onnx_path, so, digest)
            except BaseException:
                tmp.unlink(missing_ok=True)  # never the optimised graph of a broken or foreign file
                raise
            if tmp.is_file():
                try:
                    os.replace(tmp, optimized)  # complete, or not there at all
                except OSError:  # e.g. a folder in its place: run unoptimised-on-disk, as if read-only
                    tmp.unlink(missing_ok=True)
        self.generator = generator
        self.min_side = generator.pad_multiple + 1
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


def _open_session(ort, path: Path, so, digest: str | None):
    """An ONNX Runtime session on `path`, or BrokenExport (one line) when the file does not load
    (truncated, garbage) or, with `digest`, is not the export of those weights (its metadata)."""
    try:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (ONNX Runtime's errors derive from Exception alone)
        raise BrokenExport(f"{path}: damaged ONNX file ({ort_reason(exc)})") from None
    if digest is not None and session.get_modelmeta().custom_metadata_map.get(DIGEST_KEY) != digest:
        raise BrokenExport(f"{path}: damaged ONNX file (not the export of these weights: its digest differs)")
    return session


def ort_reason(exc: BaseException) -> str:
    """An ONNX Runtime error's reason in one short line."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return text.split("] : ")[-1][:160]  # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : ..." -> the reason


def _machine_key(ort_version: str) -> str:
    """A short key of the ONNX Runtime version and this CPU's model and instruction sets."""
    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
        cpu += "".join(line for line in info if line.startswith(("model name", "flags")))[:4000]
    except OSError:
        pass
    return hashlib.sha256(f"{ort_version}|{cpu}".encode()).hexdigest()[:12]


def cached_export(generator: Generator, config: dict, card: dict, task_doc: str, name: str,
                  digest: str | None = None, again: bool = False) -> Path:
    """The generator's ONNX export from the cache, made (once, atomically) when missing, or
    `again` (over a damaged one). A cache that cannot hold it is a ValueError naming the path."""
    digest = digest or generator_digest(generator, config)
    path = check_cache_dir() / "onnx" / f"{digest[:24]}.onnx"
    with _EXPORT_LOCK:  # torch.onnx.export keeps global state: one export at a time per process
        if again or not path.is_file():
            if not again:
                print(f"vitrestore: exporting {name} to ONNX once for the fast CPU path (cached in {path.parent})",
                      file=sys.stderr)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                export_generator(generator, path, config, card, task_doc, digest)
            except OSError as exc:
                raise ValueError(f"{_cache_var()} ({cache_dir()}): cannot write the ONNX export there "
                                 f"({exc.strerror or exc})") from None
    return path


def onnx_net(generator: Generator, config: dict, card: dict, task_doc: str, name: str) -> OrtNet:
    """OrtNet on the generator's cached export; a damaged cached file (it does not load, or its
    digest is not these weights') is exported again, atomically, with a one-line notice."""
    digest = generator_digest(generator, config)
    path = cached_export(generator, config, card, task_doc, name, digest)
    try:
        return OrtNet(generator, path, digest=digest)
    except BrokenExport as exc:
        print(f"vitrestore: {exc}; exporting {name} again", file=sys.stderr)
    cached_export(generator, config, card, task_doc, name, digest, again=True)
    return OrtNet(generator, path, digest=digest)  # a fresh export that does not load: BrokenExport


def onnx_available() -> bool:
    """Whether onnx and onnxruntime are installed (found, not imported: `import onnx` alone takes
    about a second, and it is needed only to export)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AMX tiles or AVX512-BF16); elsewhere bf16 is
    emulated and many times slower than fp32. $VITRESTORE_CPU_BF16=0/1 overrides."""
    forced = env_choice("VITRESTORE_CPU_BF16")
    if forced is not None:
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
