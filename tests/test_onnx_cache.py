"""The settings around the ONNX backend end in one line, at start: a $VITRESTORE_CACHE that is a
file, $VITRESTORE_BACKEND / $VITRESTORE_CPU_BF16 outside their values, --device cuda without a
GPU; and a damaged cached export (truncated, garbage, another model's) is made again, with a
one-line notice, instead of failing every run until someone deletes it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import smooth_image
from vitrestore.cli import main
from vitrestore.engine.nets import TorchNet, cache_dir, cpu_has_bf16
from vitrestore.engine.runtime import check_environment, pick_device
from vitrestore.tasks import load_model


def cli(*args) -> tuple[int, str]:
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stderr


@pytest.fixture
def photo(tmp_path):
    import cv2

    p = tmp_path / "photo.png"
    cv2.imwrite(str(p), smooth_image(np.random.default_rng(1), 40, 56))
    return p


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and all(w in lines[0] for w in words), err


# --- $VITRESTORE_CACHE ---------------------------------------------------------------------------
def test_cache_variable_naming_a_file_fails_at_start_in_one_line(tmp_path, monkeypatch, tiny_weights, photo):
    """An explicit setting that cannot work is an error, not a quiet fallback to ~/.cache (which
    may be read-only, small or private): the user set the variable and should learn it is wrong."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    for value, where in ((blocker, "is a file"), (blocker / "sub", "is under")):
        monkeypatch.setenv("VITRESTORE_CACHE", str(value))
        with pytest.raises(ValueError, match="VITRESTORE_CACHE") as err:
            check_environment("cpu", "onnx")
        assert str(value) in str(err.value) and where in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(ValueError, match="VITRESTORE_CACHE"):
            load_model(tiny_weights, device="cpu", backend="onnx")
        assert_one_line_error(*cli("denoise", photo, "--model", tiny_weights, "--backend", "onnx", "-o",
                                   tmp_path / "out.png"), "VITRESTORE_CACHE", str(value))
    check_environment("cpu", "torch")  # the torch backend has no use for the cache: it runs
    assert load_model(tiny_weights, device="cpu", backend="torch").backend == "torch"


# --- damaged cached exports ----------------------------------------------------------------------
@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VITRESTORE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def _export_and_opt(folder):
    exports = [p for p in folder.glob("*.onnx") if not p.name.endswith(".opt.onnx")]
    assert len(exports) == 1
    return exports[0], list(folder.glob("*.opt.onnx"))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "another model's"])
def test_a_damaged_cached_export_is_made_again_with_a_notice(own_cache, tiny_weights, damage, capfd):
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    ref = load_model(tiny_weights, device="cpu", backend="torch", precision="fp32").run_tensor(x)
    load_model(tiny_weights, device="cpu", backend="onnx")
    export, opts = _export_and_opt(own_cache)
    good = export.read_bytes()
    for p in opts:  # the optimised graph goes first when there: without it the export itself is read
        p.unlink()
    if damage == "another model's":
        from test_onnx import tiny_generator
        from vitrestore.engine.onnx_export import export_generator

        export_generator(tiny_generator(cond_channels=2), export, {"task": "x"}, {}, "x")
    else:
        export.write_bytes({"truncated": good[: len(good) // 2], "garbage": b"\x07junk" * 1000, "empty": b""}[damage])
    capfd.readouterr()
    model = load_model(tiny_weights, device="cpu", backend="onnx")
    notice = [ln for ln in capfd.readouterr().err.splitlines() if "damaged ONNX file" in ln]
    assert len(notice) == 1 and str(export) in notice[0] and "exporting" in notice[0] and "again" in notice[0]
    assert float((model.run_tensor(x) - ref).abs().max()) < 1e-4
    assert not list(own_cache.glob(".*"))  # made atomically: no temporary file left
    load_model(tiny_weights, device="cpu", backend="onnx")  # sound now: no notice, no new export
    assert "damaged" not in capfd.readouterr().err


def test_a_damaged_optimised_graph_is_made_again(own_cache, tiny_weights, capfd):
    load_model(tiny_weights, device="cpu", backend="onnx")
    export, opts = _export_and_opt(own_cache)
    assert len(opts) == 1
    opts[0].write_bytes(opts[0].read_bytes()[:1000])
    capfd.readouterr()
    model = load_model(tiny_weights, device="cpu", backend="onnx")
    err = capfd.readouterr().err
    assert "damaged ONNX file" in err and "optimising the export again" in err and "Traceback" not in err
    assert opts[0].stat().st_size > 1000 and model.run_tensor(torch.rand(1, 3, 40, 56)).shape == (1, 3, 40, 56)


# --- environment variables and devices -----------------------------------------------------------
@pytest.mark.parametrize("var, allowed", [("VITRESTORE_BACKEND", "auto, torch, onnx"), ("VITRESTORE_CPU_BF16", "0, 1")])
def test_a_bad_environment_variable_fails_at_start_in_one_line(monkeypatch, tmp_path, photo, tiny_weights, var, allowed):
    monkeypatch.setenv(var, "garbage")
    with pytest.raises(ValueError, match=f"{var}='garbage'.*{allowed}"):
        check_environment()
    # before any file is read: a missing weights file is not what the user hears about first
    with pytest.raises(ValueError, match=var):
        load_model(tmp_path / "missing.safetensors", device="cpu")
    for command in (["denoise", photo, "--model", tiny_weights], ["upscale", photo], ["restore", photo, "--weights", tiny_weights]):
        assert_one_line_error(*cli(*command, "-o", tmp_path / "out.png"), var, allowed)
    monkeypatch.setenv(var, "")  # empty counts as unset
    check_environment()


def test_cpu_bf16_override_is_checked_where_it_is_read(monkeypatch):
    monkeypatch.setenv("VITRESTORE_CPU_BF16", "yes")
    with pytest.raises(ValueError, match="VITRESTORE_CPU_BF16"):
        cpu_has_bf16()
    with pytest.raises(ValueError, match="VITRESTORE_CPU_BF16"):
        TorchNet(torch.nn.Identity(), torch.device("cpu"), "auto")
    assert TorchNet(torch.nn.Identity(), torch.device("cpu"), "fp32").precision == "fp32"  # not read: runs


def test_device_cuda_without_a_gpu_fails_at_start_in_one_line(monkeypatch, photo, tmp_path, tiny_weights):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="no CUDA device"):
            check_environment(device)
    with pytest.raises(ValueError, match="not a device"):
        pick_device("gpu0")
    assert pick_device("auto") == torch.device("cpu")
    assert_one_line_error(*cli("denoise", photo, "--model", tiny_weights, "--device", "cuda", "-o",
                               tmp_path / "out.png"), "--device cuda", "no CUDA device")


def test_check_environment_accepts_what_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("VITRESTORE_CACHE", str(tmp_path / "new" / "cache"))  # made when first needed
    for backend in (None, "auto", "torch", "onnx"):
        check_environment("cpu", backend)
    assert not cache_dir().exists()  # checking makes nothing
    with pytest.raises(ValueError, match="backend must be one of"):
        check_environment("cpu", "tensorrt")
