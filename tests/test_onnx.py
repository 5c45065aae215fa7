"""ONNX export and the ONNX Runtime backend: the exported graph matches PyTorch at any size and
any batch, the backend matches the torch path through tiling and ensembles (batches too), exports
are cached by digest, and half precision falls back to fp32 for a tile that overflows, and bf16
stays within 1/255 of fp32."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from conftest import smooth_image

from vitrestore.config import GeneratorConfig
from vitrestore.engine.nets import TorchNet, cache_dir, pick_backend
from vitrestore.engine.onnx_check import compare_with_torch
from vitrestore.engine.onnx_export import export_generator
from vitrestore.nn.generator import Generator
from vitrestore.tasks import load_model
from vitrestore.weights import shipped_models


def tiny_generator(cond_channels: int = 0, scale: int = 1, **kw) -> Generator:
    """Two blocks per stage, so the shifted windows (and their masks) are in every graph."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(**{"stem_channels": 8, "dims": (8, 16), "heads": (1, 2), "enc_depths": (2, 2),
                             "dec_depths": (2,), "window": 4, "mlp_ratio": 1.0, **kw})
    gen = Generator(cfg, cond_channels=cond_channels, scale=scale).eval()
    with torch.no_grad():  # the head starts at zero: make the output depend on the network
        for p in gen.head.parameters():
            p.normal_(0, 0.1)
    return gen


@pytest.mark.parametrize("kw", [{"cond_channels": 2}, {"scale": 2}, {"scale": 4, "patch_stride": 1}])
def test_export_matches_pytorch_on_two_odd_sizes(tmp_path, kw):
    gen = tiny_generator(**kw)
    path = tmp_path / "g.onnx"
    export_generator(gen, path, {"task": "x"}, {"steps": 1}, "x: test")
    m = gen.pad_multiple
    for size in [(m + 3, 3 * m + 1), (2 * m + 5, m + 7)]:
        shape, diff = compare_with_torch(gen, path, size=size, seed=size[0])
        assert shape == size and diff <= 1e-4, (size, diff)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    contract = json.loads(meta["vitrestore.contract"])
    assert contract["scale"] == kw.get("scale", 1) and contract["min_side"] == m + 1
    assert contract["inputs"] == (["image", "cond"] if kw.get("cond_channels") else ["image"])
    assert json.loads(meta["vitrestore.card"]) == {"steps": 1}


def _run_onnx(path, x: torch.Tensor, cond: torch.Tensor | None) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy(), **({"cond": cond.numpy()} if cond is not None else {})}
    return session.run(None, feed)[0]


@pytest.mark.parametrize("kw", [{"cond_channels": 2}, {"scale": 2, "token_upsample": "bilinear"},
                                {"dims": (8, 8, 16), "heads": (1, 1, 2), "enc_depths": (2, 2, 2),
                                 "dec_depths": (2, 2)}])
def test_export_runs_any_batch_and_odd_size(tmp_path, kw):
    """The documented dynamic batch: 1, 2 and 3 images (the shifted-window masks broadcast to
    each) at odd sizes, exact multiples and near the smallest side, as in PyTorch."""
    gen = tiny_generator(**kw)
    path = tmp_path / "g.onnx"
    export_generator(gen, path, {"task": "x"}, {}, "x: test")
    m, g = gen.pad_multiple, torch.Generator().manual_seed(0)
    for b in (1, 2, 3):
        for h, w in [(m + 1, 3 * m + 5), (2 * m + 3, m + 7), (2 * m, 3 * m)]:
            x = torch.rand(b, 3, h, w, generator=g)
            cond = torch.rand(b, gen.cond_channels, h, w, generator=g) if gen.cond_channels else None
            with torch.no_grad():
                ref = gen(x, cond).numpy()
            out = _run_onnx(path, x, cond)
            assert out.shape == ref.shape and np.abs(out - ref).max() <= 1e-4, (b, h, w)
    assert compare_with_torch(gen, path, batches=(1, 2, 3))[1] <= 1e-4


@pytest.fixture(scope="module")
def shifted_weights(tmp_path_factory):
    """A tiny denoiser with shifted-window blocks (the session's tiny_weights has one block per
    stage, so no masks), random but fixed weights."""
    from dataclasses import asdict

    from vitrestore.weights import save_weights

    gen = tiny_generator(cond_channels=2)
    path = tmp_path_factory.mktemp("shifted") / "w.safetensors"
    save_weights(path, gen.state_dict(), {"task": "denoise", "generator": asdict(gen.cfg)}, {"steps": 0})
    return path


def test_onnx_backend_runs_a_batch_like_torch(shifted_weights):
    """load_model(..., backend='onnx') on (B, 3, H, W) for B = 1, 2, 3, odd sizes, whole and in
    tiles, one tile per call or several (as on a GPU): the same as the torch backend."""
    onnx_model = load_model(shifted_weights, device="cpu", backend="onnx", tile=40)
    torch_model = load_model(shifted_weights, device="cpu", backend="torch", precision="fp32", tile=40)
    g = torch.Generator().manual_seed(2)
    for b, (h, w), per_call in [(1, (37, 53), 1), (2, (37, 53), 1), (3, (61, 35), 1), (2, (61, 90), 3)]:
        onnx_model.tiles_per_call = torch_model.tiles_per_call = per_call
        x = torch.rand(b, 3, h, w, generator=g)
        for sigma in (None, 15.0):
            a, ref = onnx_model.run_tensor(x, sigma=sigma), torch_model.run_tensor(x, sigma=sigma)
            assert a.shape == ref.shape == (b, 3, h, w) and float((a - ref).abs().max()) < 1e-4, (b, h, w)
    arrays = [(np.random.default_rng(i).random((45, 50, 3)) * 255).astype(np.uint8) for i in range(2)]
    a, ref = onnx_model.run_arrays(arrays), torch_model.run_arrays(arrays)
    assert all(np.abs(p.astype(int) - q.astype(int)).max() <= 1 for p, q in zip(a, ref))


def test_onnx_backend_matches_torch_through_tiles_and_ensemble(tiny_weights):
    x = torch.rand(1, 3, 70, 150, generator=torch.Generator().manual_seed(1))
    kw = dict(device="cpu", tile=48, ensemble=2)
    onnx_model = load_model(tiny_weights, backend="onnx", **kw)
    torch_model = load_model(tiny_weights, backend="torch", precision="fp32", **kw)
    assert (onnx_model.backend, torch_model.backend) == ("onnx", "torch")
    for sigma in (None, 25.0):
        a, b = onnx_model.run_tensor(x, sigma=sigma), torch_model.run_tensor(x, sigma=sigma)
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-4
    tiny = torch.rand(1, 3, 9, 13)  # below the pad multiple: the backend runs the torch generator
    assert torch.allclose(onnx_model.run_tensor(tiny), torch_model.run_tensor(tiny), atol=1e-6)


def _cached() -> list:
    return sorted((cache_dir() / "onnx").glob("*.onnx"))


def test_exports_are_cached_by_weights_digest(tiny_weights):
    """One export per weights; beside it ONNX Runtime's optimised graph for this machine, made
    on the first session and loaded (not re-optimised) by the next."""
    load_model(tiny_weights, device="cpu", backend="onnx")
    files = _cached()
    assert any(f.name.endswith(".opt.onnx") for f in files)
    assert not list((cache_dir() / "onnx").glob(".*"))  # no temporary file left
    stamps = [f.stat().st_mtime_ns for f in files]
    again = load_model(tiny_weights, device="cpu", backend="onnx")  # same weights: nothing new
    assert _cached() == files and [f.stat().st_mtime_ns for f in files] == stamps
    x = torch.rand(1, 3, 40, 56)
    fp32 = load_model(tiny_weights, device="cpu", backend="torch", precision="fp32")
    assert torch.allclose(again.run_tensor(x), fp32.run_tensor(x), atol=1e-5)
    model = load_model(tiny_weights, device="cpu", backend="torch")
    with torch.no_grad():
        model.generator.head[-2].bias.add_(0.01)  # other weights, another export
    type(model)(model.task, model.generator, model.card, model.device, backend="onnx", config=model.config)
    assert len(_cached()) == len(files) + 2


def _shipped_request(name: str) -> dict:
    """What a shipped model needs beside a 70x90 image: inpaint a mask with one hole, others nothing."""
    if name != "inpaint":
        return {}
    mask = torch.zeros(1, 1, 70, 90)
    mask[..., 20:40, 30:60] = 1
    return {"mask": mask}


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_models())
def test_every_shipped_model_runs_the_same_on_both_backends(name):
    """Within 1/255 through the whole inference path (tiling, conditions, compositing)."""
    rng = np.random.default_rng(0)
    img = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
    request = _shipped_request(name)
    a = load_model(name, device="cpu", backend="onnx", tile=64)(img, **request)
    b = load_model(name, device="cpu", backend="torch", precision="fp32", tile=64)(img, **request)
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_models())
def test_every_shipped_model_in_bf16_stays_within_one_level_of_fp32(name):
    """The CPU's auto precision where it has bfloat16 units: the same 8-bit output within 1/255 on
    a photo-like image (a hole in pure noise is another matter: inpaint invents it differently);
    a mask (repair's detector) the same but for pixels whose logit sits at the cut: under 1%."""
    img = smooth_image(np.random.default_rng(0), 70, 90)
    request = _shipped_request(name)
    a, b = (load_model(name, device="cpu", backend="torch", precision=p, tile=64)(img, **request) for p in ("fp32", "bf16"))
    assert a.shape == b.shape
    if set(np.unique(a)) <= {0, 255}:  # a mask
        assert (a != b).any(axis=-1).mean() < 0.01
    else:
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_backend_choices_and_impossible_asks(monkeypatch):
    cpu = torch.device("cpu")
    assert pick_backend("auto", cpu, "auto") == "torch" and pick_backend("onnx", cpu, "auto") == "onnx"
    for has_bf16, precision in (("1", "bf16"), ("0", "fp32")):  # auto precision follows the CPU's bf16 units
        monkeypatch.setenv("VITRESTORE_CPU_BF16", has_bf16)
        assert TorchNet(tiny_generator(), cpu, "auto").precision == precision
    assert pick_backend("auto", torch.device("cuda"), "auto") == "torch"
    with pytest.raises(ValueError, match="CPU"):
        pick_backend("onnx", torch.device("cuda"), "auto")
    with pytest.raises(ValueError, match="fp32"):
        pick_backend("onnx", cpu, "bf16")
    with pytest.raises(ValueError, match="CUDA only"):
        TorchNet(tiny_generator(), cpu, "fp16")


class _OverflowsInHalf(torch.nn.Module):
    """Inf under autocast (as an fp16 overflow would give), finite in fp32."""

    def forward(self, x, cond=None):
        if torch.is_autocast_enabled("cpu"):
            return x * float("inf")
        return x * 2


def test_half_precision_reruns_a_non_finite_tile_in_fp32():
    net = TorchNet(_OverflowsInHalf(), torch.device("cpu"), "bf16")
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(net(x, None), x * 2) and net.fallbacks == 1
    ok = TorchNet(tiny_generator(), torch.device("cpu"), "bf16")
    y = ok(torch.rand(1, 3, 32, 32), None)
    assert torch.isfinite(y).all() and y.dtype == torch.float32 and ok.fallbacks == 0


@pytest.mark.slow
def test_cli_export_writes_a_checked_self_describing_file(tiny_weights, tmp_path):
    out = tmp_path / "tiny.onnx"
    cmd = [sys.executable, "-m", "vitrestore", "export", str(tiny_weights), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "largest difference" in done.stdout
    diff = float(done.stdout.split("largest difference")[1].split()[0])
    assert diff <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["vitrestore.config"])["task"] == "denoise"
    assert "sigma / 50" in json.loads(meta["vitrestore.contract"])["task"]
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr
    bad = subprocess.run(cmd[:-1] + [str(tmp_path / "x.txt")], capture_output=True, text=True)
    assert bad.returncode == 2 and ".onnx" in bad.stderr
