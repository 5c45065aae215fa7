"""The batch commands against hostile use (issue 22): bad weights files, bad options, odd
inputs and outputs. Each ends in the right result or one 'error: ...' line, before the work
where it can be known before the work."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import vitrestore.io.atomic
from conftest import smooth_image
from vitrestore.cli import main
from vitrestore.batch.plan import plan_jobs
from vitrestore.io.images import read_image, write_image


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    return res.exit_code, res.output


def errors(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("error: ")]


def photo(path, seed=0, h=40, w=56):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), smooth_image(np.random.default_rng(seed), h, w)[:, :, ::-1])
    return path


def edited(weights, tmp_path, tensors=None, config=None, name="edited.safetensors"):
    """A copy of a weights file with its tensors and/or config metadata changed."""
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        meta = f.metadata()
    state = load_file(str(weights))
    if tensors is not None:
        state = tensors(state)
    if config is not None:
        meta = {**meta, "config": config(json.loads(meta["config"]))}
    out = tmp_path / name
    save_file(state, str(out), metadata=meta)
    return out


def _set(section, key, value):
    def f(cfg):
        cfg[section][key] = value
        return json.dumps(cfg)
    return f


@pytest.mark.parametrize("case", ["dims", "window0", "heads", "missing", "shape", "config_list", "task"])
def test_restore_with_edited_weights_is_one_line(tmp_path, tiny_weights, case):
    src = photo(tmp_path / "p.png")
    first = lambda s: next(iter(s))  # noqa: E731
    kw = {
        "dims": dict(config=_set("generator", "dims", [16, 32])),
        "window0": dict(config=_set("generator", "window", 0)),
        "heads": dict(config=_set("generator", "heads", [3, 2])),
        "missing": dict(tensors=lambda s: {k: v for i, (k, v) in enumerate(s.items()) if i}),
        "shape": dict(tensors=lambda s: {**s, first(s): torch.zeros(3, 3)}),
        "config_list": dict(config=lambda c: "[1,2,3]"),
        "task": dict(config=lambda c: json.dumps({**c, "task": "nosuchtask"})),
    }[case]
    bad = edited(tiny_weights, tmp_path, **kw)
    code, out = run("restore", src, "--weights", bad, "-q")
    assert code == 2 and len(errors(out)) == 1 and str(bad) in errors(out)[0], out
    assert not (tmp_path / "p_denoise.png").exists()


def test_nan_weights_are_refused_and_non_finite_outputs_fail(tmp_path, tiny_weights, monkeypatch):
    src = photo(tmp_path / "p.png")
    bad = edited(tiny_weights, tmp_path, tensors=lambda s: {k: torch.full_like(v, float("nan")) for k, v in s.items()})
    code, out = run("restore", src, "--weights", bad, "-q")
    assert code == 2 and "NaN" in errors(out)[0]
    from vitrestore.engine.runtime import Model

    monkeypatch.setattr(Model, "_tiled", lambda self, x, tile, **r: torch.full((1, 3, *x.shape[-2:]), float("nan")))
    code, out = run("denoise", src, "--model", tiny_weights, "-q")
    assert code == 1 and "NaN" in errors(out)[0] and not (tmp_path / "p_denoised.png").exists()


def test_report_folder_is_checked_before_the_work(tmp_path, tiny_weights):
    src = photo(tmp_path / "p.png")
    code, out = run("denoise", src, "--model", tiny_weights, "--report", tmp_path / "nope" / "r.json", "-q")
    assert code == 2 and "nope" in errors(out)[0] and not (tmp_path / "p_denoised.png").exists()


def test_report_on_a_full_disk_leaves_no_partial_file(tmp_path, tiny_weights, monkeypatch):
    src = photo(tmp_path / "p.png")

    def full(f, data, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vitrestore.io.atomic, "_write", full)
    code, out = run("denoise", src, "--model", tiny_weights, "--report", tmp_path / "r.json", "-q")
    assert code == 1 and "No space left on device" in errors(out)[0] and "r.json" in errors(out)[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "p_denoised.png"]


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_max_megapixels_must_be_positive(tmp_path, tiny_weights, value):
    code, out = run("denoise", photo(tmp_path / "p.png"), "--model", tiny_weights, "--max-megapixels", value)
    assert code == 2 and "--max-megapixels" in out and not (tmp_path / "p_denoised.png").exists()


def test_tiny_tiles_are_refused(tmp_path, tiny_weights):
    code, out = run("denoise", photo(tmp_path / "p.png"), "--model", tiny_weights, "--tile", "7")
    assert code == 2 and out.strip().startswith("error: --tile: ") and "at least 32" in out
    assert len(out.strip().splitlines()) == 1  # a usage error is one line too, not click's usage block


def test_output_folder_inside_the_input_folder_is_never_an_input(tmp_path, tiny_weights):
    d = tmp_path / "in"
    photo(d / "p1.png")
    for _ in range(2):
        code, out = run("denoise", d, "-r", "-o", d / "out", "--model", tiny_weights, "-q", "--overwrite")
        assert code == 0, out
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*.png")) == ["out/p1.png", "p1.png"]


def test_duplicate_inputs_run_once(tmp_path, tiny_weights):
    d = tmp_path / "d"
    a = photo(d / "a.png")
    for args in ([a, a], [d, a]):
        code, out = run("denoise", *args, "--model", tiny_weights, "-q", "--overwrite")
        assert code == 0 and "1 written" in out, out


def test_bad_output_targets_fail_before_the_work(tmp_path, tiny_weights):
    d = tmp_path / "d"
    a, b = photo(d / "a.png"), photo(d / "b.png", 1)
    target = tmp_path / "afile.png"
    target.write_bytes(b"x")
    for args, word in [([d, "-o", target], "existing file"), ([a, "-o", tmp_path / "out.gif"], ".gif"),
                       ([a, b, "-o", tmp_path / "two.png"], "2 inputs"), ([d, "-o", tmp_path / "x.jpg"], "folder")]:
        code, out = run("denoise", *args, "--model", tiny_weights, "-q")
        assert code == 2 and word in errors(out)[0], out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.png", "d"] and target.read_bytes() == b"x"


def test_unreadable_fifo_and_symlink_loop_inputs_fail_alone(tmp_path, tiny_weights):
    good = photo(tmp_path / "good.png")
    locked = photo(tmp_path / "locked.png", 1)
    locked.chmod(0)
    os.mkfifo(tmp_path / "pipe.png")
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    code, out = run("denoise", good, locked, tmp_path / "pipe.png", tmp_path / "loop.png", "--model", tiny_weights, "-q")
    locked.chmod(0o644)
    assert code == 1 and (tmp_path / "good_denoised.png").is_file(), out
    text = "\n".join(errors(out))
    assert "pipe.png: not a regular file" in text and "loop.png: symlink loop" in text
    assert "broken" not in text and "empty file" not in text


def test_empty_output_is_redone_and_earlier_outputs_are_counted(tmp_path, tiny_weights):
    d = tmp_path / "d"
    photo(d / "a.png")
    (d / "a_denoised.png").write_bytes(b"")
    code, out = run("denoise", d, "--model", tiny_weights, "-q")
    assert code == 0 and "1 written, 1 skipped" in out, out
    assert read_image(d / "a_denoised.png").pixels.shape == (40, 56, 3)


def test_a_command_refuses_a_model_of_another_task(tmp_path, tiny_weights, tiny_inpaint_weights,
                                                    tiny_upscale_weights):
    src = photo(tmp_path / "p.png")
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.pad(np.full((10, 10), 255, np.uint8), ((5, 25), (5, 41))))
    for args in (["inpaint", src, "--mask", mask, "--model", tiny_weights],
                 ["denoise", src, "--model", tiny_upscale_weights],
                 ["denoise", src, "--model", tiny_inpaint_weights]):
        code, out = run(*args, "-q")
        assert code == 2 and "not a" in errors(out)[0], out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "p.png"]


def test_masks_that_leave_nothing_to_fill_from(tmp_path, tiny_inpaint_weights):
    src = photo(tmp_path / "p.png")
    white = tmp_path / "white.png"
    cv2.imwrite(str(white), np.full((40, 56), 255, np.uint8))
    code, out = run("inpaint", src, "--mask", white, "--model", tiny_inpaint_weights, "-q")
    assert code == 1 and "whole image" in errors(out)[0]
    rgba = np.zeros((40, 56, 4), np.uint8)  # opaque everywhere but one pixel at 254: luminance rule
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 254
    rgba[10:20, 10:20, :3] = 255
    write_image(tmp_path / "rgba.png", rgba)
    code, out = run("inpaint", src, "--mask", tmp_path / "rgba.png", "--model", tiny_inpaint_weights, "-q")
    assert code == 0, out
    res, img = read_image(tmp_path / "p_inpainted.png").pixels, read_image(src).pixels
    assert np.array_equal(res[25:], img[25:])  # outside the white square: kept


def test_mask_tree_mirroring_the_image_tree(tmp_path, tiny_inpaint_weights):
    hole = np.zeros((40, 56), np.uint8)
    hole[5:15, 5:15] = 255
    for sub in ("a", "b"):
        photo(tmp_path / "img" / sub / "x.png")
        (tmp_path / "masks" / sub).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "masks" / sub / "x.png"), hole)
    code, out = run("inpaint", tmp_path / "img", "-r", "--mask", tmp_path / "masks", "-o", tmp_path / "out",
                    "--model", tiny_inpaint_weights, "-q")
    assert code == 0 and "2 written" in out, out


def test_gray_alpha_stays_gray_alpha(tmp_path, tiny_weights):
    for dtype, peak in ((np.uint8, 255), (np.uint16, 65535)):
        a = (smooth_image(np.random.default_rng(3), 40, 56)[:, :, :2].astype(np.float64) / 255 * peak).astype(dtype)
        write_image(tmp_path / "ga.png", a)
        assert read_image(tmp_path / "ga.png").pixels.shape == (40, 56, 2)
        code, out = run("denoise", tmp_path / "ga.png", "--model", tiny_weights, "-q", "--overwrite")
        assert code == 0, out
        res = read_image(tmp_path / "ga_denoised.png").pixels
        assert res.shape == (40, 56, 2) and res.dtype == dtype and np.array_equal(res[..., 1], a[..., 1])


def test_plan_skips_outputs_of_earlier_runs_as_skipped_jobs(tmp_path):
    d = tmp_path / "d"
    photo(d / "a.png")
    photo(d / "a_denoised.png")
    jobs, problems = plan_jobs([d], None, "denoised")
    assert not problems and sorted((j.src.name, bool(j.skip)) for j in jobs) == [("a.png", False),
                                                                                ("a_denoised.png", True)]


def test_an_empty_shard_says_so(tmp_path, tiny_weights):
    d = tmp_path / "d"
    photo(d / "a.png")
    shard = next(f"{k}/2" for k in (1, 2) if not plan_jobs([d], None, "denoised", shard=(k, 2))[0])
    code, out = run("denoise", d, "--shard", shard, "--model", tiny_weights)
    assert code == 0 and "holds none of the images" in out and not errors(out)


def test_cmyk_jpeg_prints_no_warning(tmp_path, tiny_weights):
    from PIL import Image

    Image.fromarray(smooth_image(np.random.default_rng(2), 40, 56)).convert("CMYK").save(tmp_path / "c.jpg")
    code, out = run("denoise", tmp_path / "c.jpg", "--model", tiny_weights, "-q")
    assert code == 0 and "Warning" not in out, out


def test_truncated_jpeg_multipage_tiff_and_animation_are_refused(tmp_path, capfd):
    import io as _io

    from PIL import Image

    from vitrestore.io.images import ImageReadError

    a = smooth_image(np.random.default_rng(0), 120, 160)
    buf = _io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90)
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2] + b"\xff\xd9")
    frames = [Image.fromarray(a), Image.fromarray(a[::-1].copy())]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    for name, word in (("cut.jpg", "truncated JPEG"), ("pages.tif", "2 frames"), ("anim.gif", "2 frames")):
        with pytest.raises(ImageReadError, match=word):
            read_image(tmp_path / name)
    assert "Corrupt JPEG" not in capfd.readouterr().err  # libjpeg's warning does not leak
    Image.fromarray(a).save(tmp_path / "whole.jpg", quality=90)
    assert read_image(tmp_path / "whole.jpg").pixels.shape == (120, 160, 3)


def test_a_mask_folder_inside_the_image_folder_is_not_input(tmp_path, tiny_inpaint_weights):
    d = tmp_path / "photos"
    photo(d / "x.png")
    hole = np.zeros((40, 56), np.uint8)
    hole[5:15, 5:15] = 255
    (d / "masks").mkdir()
    cv2.imwrite(str(d / "masks" / "x.png"), hole)
    code, out = run("inpaint", d, "-r", "--mask", d / "masks", "-o", tmp_path / "out", "--model",
                    tiny_inpaint_weights, "-q")
    assert code == 0 and "1 written" in out, out
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == ["x.png"]
