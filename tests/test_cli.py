"""The `vitrestore` command end to end on generated images (tiny weights for mechanics, the
shipped weights for quality)."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import smooth_image
from vitrestore.cli import main
from vitrestore.metrics import psnr


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def write_rgb(path, rgb):
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "photo.png"
    write_rgb(p, smooth_image(np.random.default_rng(1), 40, 56))
    return p


def test_default_output_name_and_input_untouched(photo, tiny_weights):
    before = photo.read_bytes()
    code, out = run("denoise", photo, "--model", tiny_weights)
    assert code == 0, out
    result = photo.with_name("photo_denoised.png")
    assert result.is_file() and photo.read_bytes() == before
    assert cv2.imread(str(result)).shape == (40, 56, 3)


def test_existing_output_is_skipped_unless_overwrite(photo, tiny_weights):
    dst = photo.with_name("photo_denoised.png")
    dst.write_bytes(b"keep")
    code, out = run("denoise", photo, "--model", tiny_weights)
    assert code == 0 and dst.read_bytes() == b"keep" and "1 skipped" in out
    code, out = run("denoise", photo, "--model", tiny_weights, "--overwrite")
    assert code == 0 and dst.read_bytes() != b"keep"


def test_folder_mirrors_structure_and_reports_bad_files(tmp_path, tiny_weights):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(2)
    write_rgb(src / "a.png", smooth_image(rng, 32, 40))
    write_rgb(src / "sub" / "b.jpg", smooth_image(rng, 48, 36))
    (src / "empty.png").write_bytes(b"")
    (src / "text.png").write_text("hello, not an image")
    good = (src / "a.png").read_bytes()
    (src / "trunc.png").write_bytes(good[: len(good) // 2])
    write_rgb(src / "tiny.png", smooth_image(rng, 4, 4))
    (src / "notes.txt").write_text("ignored: not an image suffix")
    code, out = run("denoise", src, "-o", tmp_path / "out", "--recursive", "--model", tiny_weights, "-q")
    assert code == 1
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "sub" / "b.jpg").is_file()
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    reasons = "\n".join(lines)
    assert len(lines) == 4
    assert "empty.png: empty file" in reasons
    assert "text.png: not an image" in reasons
    assert "trunc.png: truncated" in reasons
    assert "tiny.png: image too small" in reasons
    assert "2 written" in out and "4 failed" in out
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix not in (".png", ".jpg")]
    assert leftovers == []
    # without --recursive only the top level is processed
    code, out = run("denoise", src, "-o", tmp_path / "flat", "--model", tiny_weights, "-q")
    assert not (tmp_path / "flat" / "sub").exists()


def test_missing_input_and_too_large(photo, tmp_path, tiny_weights):
    code, out = run("denoise", tmp_path / "nope.png", photo, "--model", tiny_weights)
    assert code == 1 and "nope.png: no such file" in out
    code, out = run("denoise", photo, "--model", tiny_weights, "--max-megapixels", "0.001", "--overwrite")
    assert code == 1 and "image too large" in out


def test_refuses_to_overwrite_inputs(tmp_path, tiny_weights):
    src = tmp_path / "in"
    src.mkdir()
    write_rgb(src / "a.png", smooth_image(np.random.default_rng(3), 32, 32))
    before = (src / "a.png").read_bytes()
    code, out = run("denoise", src, "-o", src, "--model", tiny_weights, "--overwrite")
    assert code == 2 and "input folder itself" in out  # refused whole: outputs would become inputs
    code, out = run("denoise", src / "a.png", "-o", src / "a.png", "--model", tiny_weights, "--overwrite")
    assert code == 1 and "would overwrite an input" in out
    assert (src / "a.png").read_bytes() == before


def test_bad_model_and_unknown_option(photo, tmp_path):
    code, out = run("denoise", photo, "--model", tmp_path / "missing.safetensors")
    assert code == 2 and "missing.safetensors" in out
    code, out = run("denoise", photo, "--model", "no-such-model")
    assert code == 2 and "unknown model" in out


def test_gray_16bit_alpha_and_exif(tmp_path, tiny_weights):
    rng = np.random.default_rng(4)
    gray16 = (smooth_image(rng, 40, 48)[:, :, 0].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    rgba = np.dstack([smooth_image(rng, 36, 44), rng.integers(0, 256, (36, 44), dtype=np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba[:, :, [2, 1, 0, 3]])
    tif16 = smooth_image(rng, 32, 40).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "c16.tif"), tif16[:, :, ::-1])
    im = Image.fromarray(smooth_image(rng, 30, 50))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    code, out = run("denoise", tmp_path, "--model", tiny_weights, "-q")
    assert code == 0, out
    g = cv2.imread(str(tmp_path / "g16_denoised.png"), cv2.IMREAD_UNCHANGED)
    assert g.dtype == np.uint16 and g.ndim == 2 and g.shape == (40, 48)
    assert np.abs(g.astype(float) - gray16).mean() < 3000  # still the same picture, in 16-bit units
    r = cv2.imread(str(tmp_path / "rgba_denoised.png"), cv2.IMREAD_UNCHANGED)
    assert r.shape == (36, 44, 4) and np.array_equal(r[:, :, 3], rgba[:, :, 3])
    t = cv2.imread(str(tmp_path / "c16_denoised.tif"), cv2.IMREAD_UNCHANGED)
    assert t.dtype == np.uint16 and t.shape == (32, 40, 3)
    rot = cv2.imread(str(tmp_path / "rot_denoised.jpg"), cv2.IMREAD_UNCHANGED)
    assert rot.shape[:2] == (50, 30)


def test_models_command_lists_shipped_weights():
    code, out = run("models")
    assert code == 0 and "denoise" in out and "PSNR" in out


@pytest.mark.slow
def test_shipped_model_raises_psnr_substantially(tmp_path):
    rng = np.random.default_rng(5)
    clean = smooth_image(rng, 96, 128)
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).round().astype(np.uint8)
    write_rgb(tmp_path / "noisy.png", noisy)
    code, out = run("denoise", tmp_path / "noisy.png")
    assert code == 0, out
    den = cv2.imread(str(tmp_path / "noisy_denoised.png"))[:, :, ::-1]

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255

    gain = psnr(t(den), t(clean)) - psnr(t(noisy), t(clean))
    assert gain > 6, gain


@pytest.mark.slow
def test_installed_entry_point_runs_from_any_directory(tmp_path, tiny_weights):
    img = tmp_path / "x.png"
    write_rgb(img, smooth_image(np.random.default_rng(6), 24, 24))
    res = subprocess.run([sys.executable, "-m", "vitrestore", "denoise", str(img), "--model", str(tiny_weights)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "x_denoised.png").is_file()


def test_help_and_models_start_without_torch():
    """`vitrestore --help` and `vitrestore models` read no tensors: they must not pay torch's import."""
    code = ("import sys\nfrom vitrestore.cli import main\n"
            "for argv in (['--help'], ['models'], ['denoise', '--help']):\n"
            "    try:\n        main(argv, standalone_mode=False)\n    except SystemExit:\n        pass\n"
            "heavy = sorted(m for m in ('torch', 'cv2', 'kornia', 'onnxruntime') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout and "denoise" in done.stdout and "--backend" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_on_a_missing_gpu_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"task: denoise\ntrain:\n  out: {tmp_path / 'run'}\n")
    code, out = run("train", cfg, "--device", "cuda")
    assert code == 2 and out.startswith("error: ") and "no CUDA device" in out and len(out.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_misspelled_task_command_gets_its_near_miss():
    code, out = run("denoize", "a.png")
    assert code == 2 and "Did you mean 'denoise'?" in out and "(see: vitrestore --help)" in out


def test_a_path_too_long_to_look_at_is_one_line(tmp_path):
    img = tmp_path / "a.png"
    write_rgb(img, smooth_image(np.random.default_rng(1), 16, 16))
    for args in (["inpaint", img, "--mask", "x" * 300 + ".png"], ["denoise", img, "--model", "x" * 300]):
        code, out = run(*args)
        assert code == 2 and out.startswith("error: ") and "File name too long" in out and len(out.splitlines()) == 1
