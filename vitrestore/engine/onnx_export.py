"""Export a generator to ONNX, with dynamic batch, height and width, and a self-describing file.

The graph is the generator's own forward, pad-to-multiple and crop included: the pad amounts
and every reshape are traced from the input's shape, the batch too (traced with TRACE_BATCH
images; nothing in the network branches on the batch), so one file runs any batch and any size
whose sides are both above the pad multiple (`min_side` in the metadata; a smaller image must
be replicate-padded to the multiple by the caller and the output cropped, as the CUDA/torch
path does). Inputs and output:

    image  (B, 3, H, W)  float32 RGB in [0, 1]
    cond   (B, C, H, W)  float32, the task's condition channels (absent when C = 0)
    output (B, 3, sH, sW) float32, to be clipped to [0, 1]

The file's metadata (`metadata_props`) holds `vitrestore.card` and `vitrestore.config` (JSON,
as in the weights file), `vitrestore.contract` (JSON: input and output names, scale,
min_side, cond_channels, the task's condition and pre/post-processing in words) and
`vitrestore.weights_sha256`. Uses PyTorch's TorchScript-based exporter (opset 17): the
torch.export-based one cannot yet decompose the window attention with symbolic sizes.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from ..io.atomic import write_atomic
from ..nn.generator import Generator

OPSET = 17
EXPORT_VERSION = 2  # bump when the graph or metadata change: cached exports are then remade (2: any batch)
DIGEST_KEY = "vitrestore.weights_sha256"  # the metadata key a cached export is checked by
TRACE_BATCH = 2  # traced with several images, so no step can quietly assume one


def _network_source(generator: Any) -> bytes:
    """The network's code (vitrestore/nn/*.py, and its backbone's module where that is
    elsewhere): a change to it makes new exports."""
    folder = Path(sys.modules[Generator.__module__].__file__).parent
    files = sorted(folder.glob("*.py"))
    own = Path(sys.modules[type(generator).__module__].__file__)
    return b"".join(p.read_bytes() for p in files + ([own] if own not in files else []))


def generator_digest(generator: Generator, config: dict) -> str:
    """sha256 of the generator's tensors, the inference config, the network's code and the
    exporter's version: the cache key of its export."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, t in sorted(generator.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(f"opset{OPSET}-v{EXPORT_VERSION}-torch{torch.__version__}".encode())
    h.update(_network_source(generator))
    return h.hexdigest()


def contract(generator: Generator, task_doc: str) -> dict[str, Any]:
    inputs = ["image"] + (["cond"] if generator.cond_channels else [])
    return {
        "inputs": inputs,
        "output": "output",
        "layout": "NCHW float32, RGB in [0, 1]",
        "scale": generator.scale,
        "cond_channels": generator.cond_channels,
        "min_side": generator.pad_multiple + 1,
        "pad_multiple": generator.pad_multiple,
        "postprocess": "clip the output to [0, 1]",
        "task": task_doc.strip(),
    }


def _trace_size(generator: Generator) -> tuple[int, int]:
    """A traced size that is not a multiple of the pad multiple (so the pad is in the graph) and
    large enough that every attention level has more than one window (the shifted windows too)."""
    m = generator.pad_multiple
    return 2 * m + 3, 3 * m + 5


def export_bytes(generator: Generator, metadata: dict[str, str]) -> bytes:
    """The generator as an ONNX model (bytes), with `metadata` as string metadata_props."""
    import onnx  # noqa: PLC0415  (the exporter needs it; imported only when exporting)

    gen = generator.eval().cpu()
    cfg = gen.cfg
    h, w = _trace_size(gen)
    x = torch.rand(TRACE_BATCH, cfg.in_channels, h, w, generator=torch.Generator().manual_seed(0))
    args: tuple = (x, torch.zeros(TRACE_BATCH, gen.cond_channels, h, w)) if gen.cond_channels else (x,)
    names = ["image", "cond"][: len(args)]
    axes = {n: {0: "batch", 2: "height", 3: "width"} for n in names}
    axes["output"] = {0: "batch", 2: "out_height", 3: "out_width"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the (shape-specialised) size checks
        torch.onnx.export(gen, args, buf, input_names=names, output_names=["output"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    del model.metadata_props[:]
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "vitrestore"
    return model.SerializeToString()


def export_generator(generator: Generator, path: str | Path, config: dict, card: dict, task_doc: str,
                     digest: str | None = None) -> str:
    """Write the generator to `path` as ONNX (atomically) with its card, config and contract;
    returns the digest stored in it (`digest`, when the caller has already computed it)."""
    digest = digest or generator_digest(generator, config)
    meta = {"vitrestore.card": json.dumps(card), "vitrestore.config": json.dumps(config),
            "vitrestore.contract": json.dumps(contract(generator, task_doc)),
            DIGEST_KEY: digest}
    write_atomic(Path(path), export_bytes(generator, meta))
    return digest
