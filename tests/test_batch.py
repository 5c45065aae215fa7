"""Batch processing: formats and metadata, collisions, symlink loops, stale temporaries, reports,
shards, interruption and resume, batching of small images."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from conftest import smooth_image
from vitrestore.cli import main
from vitrestore.batch.plan import plan_jobs
from vitrestore.batch.run import RunOptions, run_jobs
from vitrestore.io.images import read_image, write_image


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def rgb(seed=0, h=40, w=56):
    return smooth_image(np.random.default_rng(seed), h, w)


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# --- formats ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, make, shape, dtype", [
    ("png8.png", lambda a: Image.fromarray(a), (40, 56, 3), np.uint8),
    ("gray.png", lambda a: Image.fromarray(a[:, :, 0]), (40, 56, 1), np.uint8),
    ("rgba.png", lambda a: Image.fromarray(np.dstack([a, a[:, :, :1]])), (40, 56, 4), np.uint8),
    ("la.png", lambda a: Image.fromarray(np.dstack([a[:, :, 0], a[:, :, 1]]), "LA"), (40, 56, 2), np.uint8),
    ("palette.png", lambda a: Image.fromarray(a).quantize(16), (40, 56, 3), np.uint8),
    ("cmyk.jpg", lambda a: Image.fromarray(a).convert("CMYK"), (40, 56, 3), np.uint8),
    ("plain.jpg", lambda a: Image.fromarray(a), (40, 56, 3), np.uint8),
    ("t8.tif", lambda a: Image.fromarray(a), (40, 56, 3), np.uint8),
    ("w.webp", lambda a: Image.fromarray(a), (40, 56, 3), np.uint8),
    ("b.bmp", lambda a: Image.fromarray(a), (40, 56, 3), np.uint8),
])
def test_formats_read_with_the_right_layout_and_colours(tmp_path, name, make, shape, dtype):
    a = rgb()
    p = tmp_path / name
    im = make(a)
    im.save(p, **({"lossless": True} if name.endswith(".webp") else {"quality": 98} if name.endswith(".jpg") else {}))
    img = read_image(p)
    assert img.pixels.shape == shape and img.pixels.dtype == dtype
    with Image.open(p) as decoded:  # Pillow's reading of the same file is the reference
        ref = np.asarray(decoded.convert({4: "RGBA", 3: "RGB", 2: "LA", 1: "L"}[shape[2]]))
    ref = ref if ref.ndim == 3 else ref[:, :, None]
    diff = np.abs(img.pixels.astype(int) - ref.astype(int))
    if name.endswith(".jpg"):  # decoders may upsample chroma differently at edges
        assert diff.mean() < 1.0
    else:
        assert diff.max() == 0  # no RGB/BGR mix-up, no shift


def test_16bit_png_and_tiff_round_trip_exactly(tmp_path):
    a = (np.random.default_rng(0).random((20, 24, 3)) * 65535).astype(np.uint16)
    for suffix in (".png", ".tif"):
        write_image(tmp_path / f"x{suffix}", a)
        assert np.array_equal(read_image(tmp_path / f"x{suffix}").pixels, a)


def test_white_and_grey_survive_encoding(tmp_path):
    a = np.full((16, 16, 3), 255, np.uint8)
    a[8:] = 128
    for suffix in (".png", ".jpg", ".webp", ".tif", ".bmp"):
        write_image(tmp_path / f"w{suffix}", a)
        back = read_image(tmp_path / f"w{suffix}").pixels
        assert back[0, 0].tolist() == [255, 255, 255] and len(set(back[12, 12].tolist())) == 1, suffix


def test_icc_and_exif_are_carried_over_and_orientation_applied(tmp_path, tiny_weights):
    a = rgb(h=40, w=56)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    exif[0x010F] = "TestCam"
    src = tmp_path / "cam.jpg"
    Image.fromarray(a).save(src, quality=95, icc_profile=SRGB, exif=exif.tobytes())
    for fmt in ("jpg", "png", "webp"):
        code, out = run("denoise", src, "--model", tiny_weights, "--format", fmt, "-o", tmp_path / fmt, "-q")
        assert code == 0, out
        res = Image.open(tmp_path / fmt / f"cam.{fmt}")
        assert res.size == (40, 56)  # upright: width and height swapped
        assert res.info.get("icc_profile") == SRGB, fmt
        tags = res.getexif()
        assert tags.get(0x010F) == "TestCam" and tags.get(0x0112, 1) == 1, fmt


def test_png_16bit_stays_16bit_through_the_cli(tmp_path, tiny_weights):
    a = (rgb().astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "deep.png"), a[:, :, ::-1])
    code, out = run("denoise", tmp_path / "deep.png", "--model", tiny_weights, "-q")
    assert code == 0, out
    assert read_image(tmp_path / "deep_denoised.png").pixels.dtype == np.uint16


# --- planning --------------------------------------------------------------------------------
def test_colliding_output_names_are_resolved_before_work_starts(tmp_path, tiny_weights):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rgb(1)).save(d / "a.png")
    Image.fromarray(rgb(2)).save(d / "a.jpg")
    Image.fromarray(rgb(3)).save(d / "b.jpg")
    code, out = run("denoise", d, "--model", tiny_weights, "--format", "png", "-o", tmp_path / "out", "-q")
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-jpg.png", "a-png.png", "b.png"]
    jobs, problems = plan_jobs([d], None, "denoised", fmt="png")
    assert sorted(j.dst.name for j in jobs) == ["a-jpg_denoised.png", "a-png_denoised.png", "b_denoised.png"]


def test_symlink_loops_and_unreadable_folders_are_reported(tmp_path, monkeypatch):
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(rgb(1)).save(d / "sub" / "x.png")
    os.symlink(d, d / "sub" / "loop")  # points back up: would recurse forever
    jobs, problems = plan_jobs([d], tmp_path / "out", "denoised", recursive=True)
    assert [j.src.name for j in jobs] == ["x.png"]
    assert any("symlink loop" in reason for _, reason in problems)
    locked = d / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path):  # as if the folder had no read permission (the tests may run as root)
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    jobs, problems = plan_jobs([d], tmp_path / "out", "denoised", recursive=True)
    assert [j.src.name for j in jobs] == ["x.png"]
    assert ("locked", "cannot read folder (Permission denied)") in [(p.name, r) for p, r in problems]


def test_shards_split_a_folder_without_overlap(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(30):
        (d / f"i{i:02d}.png").write_bytes(b"x")
    everything = {j.src for j in plan_jobs([d], tmp_path / "o", "s")[0]}
    parts = [{j.src for j in plan_jobs([d], tmp_path / "o", "s", shard=(k, 3))[0]} for k in (1, 2, 3)]
    assert set().union(*parts) == everything and sum(len(p) for p in parts) == 30
    assert all(parts)
    code, out = run("denoise", d, "--shard", "4/3")
    assert code != 0 and "--shard" in out


# --- running ---------------------------------------------------------------------------------
def test_stale_partials_removed_and_report_written(tmp_path, tiny_weights):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rgb(1)).save(d / "good.png")
    (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".good.png.999999999-k3j9x.partial"  # left by a killed process (pid gone)
    stale.write_bytes(b"half an image")
    live = out / f".bad.png.{os.getpid()}-abc.partial"  # a live writer's (ours): kept
    live.write_bytes(b"in progress")
    code, text = run("denoise", d, "-o", out, "--model", tiny_weights, "--report", tmp_path / "r.json", "-q")
    assert code == 1  # one file failed
    assert not stale.exists() and live.exists() and (out / "good.png").is_file()
    report = json.loads((tmp_path / "r.json").read_text())
    status = {os.path.basename(f["src"]): f["status"] for f in report["files"]}
    assert status == {"good.png": "done", "bad.png": "failed"} and report["summary"]["failed"] == 1
    code, text = run("denoise", d, "-o", out, "--model", tiny_weights, "--report", tmp_path / "r.json", "-q")
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["skipped"] == 1


def test_small_images_of_one_size_are_batched_and_match_single_runs(tmp_path, tiny_weights):
    from vitrestore.tasks import load_model

    model = load_model(tiny_weights, device="cpu")
    d = tmp_path / "small"
    d.mkdir()
    for i in range(7):
        Image.fromarray(rgb(i, 32, 40)).save(d / f"s{i}.png")
    Image.fromarray(rgb(9, 48, 40)).save(d / "other.png")
    calls = []

    def process(images):
        calls.append(len(images))
        return model.run_arrays([im.pixels for im in images])

    jobs, _ = plan_jobs([d], tmp_path / "out", "denoised")
    summary = run_jobs(jobs, process, RunOptions(quiet=True, batch=4))
    assert summary.done == 8 and max(calls) == 4 and sum(calls) == 8
    for i in range(7):
        single = model(read_image(d / f"s{i}.png").pixels)
        batched = read_image(tmp_path / "out" / f"s{i}.png").pixels
        assert np.abs(single.astype(int) - batched.astype(int)).max() <= 1


# imported at the subprocess's start (sitecustomize): run_jobs sends the process `sig` once the
# model has processed `written` images (its after_batch point: a known one, not a timed signal)
STOP_HOOK = """
import os, signal
import vitrestore.batch.run as batch

_run_jobs, _written, _sig = batch.run_jobs, {written}, signal.{sig}


def _stop(processed, state={{"sent": False}}):
    if processed >= _written and not state["sent"]:
        state["sent"] = True
        os.kill(os.getpid(), _sig)


def run_jobs(*args, **kwargs):
    return _run_jobs(*args, after_batch=_stop, **kwargs)


batch.run_jobs = run_jobs
"""


def denoise_stopped_after(tmp_path, weights, n: int, prefix: str, written: int, sig: str) -> tuple[subprocess.Popen, Path, Path]:
    """`vitrestore denoise` on n generated images (96 x 128+4i: no two share a size, so each is
    its own model call) in a subprocess that sends itself `sig` once the model has processed
    `written` of them (STOP_HOOK, as its sitecustomize): (finished process, input folder, output
    folder)."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(n):
        Image.fromarray(rgb(i, 96, 128 + 4 * i)).save(d / f"{prefix}{i:02d}.png")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STOP_HOOK.format(written=written, sig=sig))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vitrestore", "denoise", str(d), "-o", str(out), "--model", str(weights), "-q"]
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path})
    proc.err = proc.communicate(timeout=120)[1]
    return proc, d, out


@pytest.mark.slow
def test_sigterm_leaves_no_partial_files_and_a_rerun_finishes(tmp_path, tiny_weights):
    proc, d, out = denoise_stopped_after(tmp_path, tiny_weights, 12, "p", 2, "SIGTERM")
    written = sorted(out.glob("*.png"))
    assert proc.returncode == 130, proc.err
    assert "interrupted" in proc.err and "done: 2 written" in proc.err  # the stop came after the 2nd file
    assert [p.name for p in written] == ["p00.png", "p01.png"] and not list(out.glob(".*"))
    for p in written:
        assert read_image(p).pixels.shape == read_image(d / p.name).pixels.shape
    code, text = run("denoise", d, "-o", out, "--model", tiny_weights, "-q")
    assert code == 0 and f"{len(written)} skipped" in text
    assert len(list(out.glob("*.png"))) == 12


@pytest.mark.slow
def test_torchrun_processes_split_the_files(tmp_path, tiny_weights, monkeypatch):
    from vitrestore.cli import _shard_and_device

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _shard_and_device(None, "cpu") == ((2, 2), "cpu")
    assert _shard_and_device("2/3", "cpu") == ((4, 6), "cpu")  # share 2 of 3, second of 2 processes
    monkeypatch.delenv("WORLD_SIZE")
    d = tmp_path / "in"
    d.mkdir()
    for i in range(10):
        Image.fromarray(rgb(i, 24, 32)).save(d / f"f{i}.png")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "vitrestore", "denoise", str(d), "-o", str(tmp_path / "out"), "--model",
                           str(tiny_weights), "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"f{i}.png" for i in range(10))
    written = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("done:")]
    assert len(written) == 2 and sum(written) == 10 and all(written)  # each process did its own share


@pytest.mark.slow
def test_kill_9_leaves_only_complete_outputs(tmp_path, tiny_weights):
    proc, d, out = denoise_stopped_after(tmp_path, tiny_weights, 10, "k", 3, "SIGKILL")
    assert proc.returncode == -signal.SIGKILL
    written = sorted(out.glob("*.png"))  # killed while the third may still be being written
    assert [p.name for p in written] in (["k00.png", "k01.png"], ["k00.png", "k01.png", "k02.png"])
    for p in written:  # every visible output is a whole image
        assert read_image(p).pixels.shape == read_image(d / p.name).pixels.shape
    leftovers = list(out.glob(".*"))
    assert not leftovers or all(p.name.endswith(".partial") for p in leftovers)
    code, text = run("denoise", d, "-o", out, "--model", tiny_weights, "-q")
    assert code == 0 and not list(out.glob(".*")) and len(list(out.glob("*.png"))) == 10
