"""vitrestore repair: the detector trains on the synthetic damage and gives a damage logit per
pixel; the command fills what it finds (and the user's --mask strokes) with the inpaint model,
writes the mask with --mask-out, and leaves every other pixel byte-identical."""
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import TINY, smooth_image
from vitrestore.config import load_config
from vitrestore.io.images import read_image


@pytest.fixture(scope="module")
def tiny_detector(image_dir, tmp_path_factory):
    from vitrestore.engine.train import Trainer
    from vitrestore.tasks import get_task

    out = tmp_path_factory.mktemp("repairrun")
    raw = {**TINY, "task": "repair", "generator": {**TINY["generator"], "out_channels": 1, "residual": False},
           "data": {**TINY["data"], "train": [str(image_dir)], "val_holdout": 1},
           "train": {**TINY["train"], "steps": 6, "val_every": 3, "out": str(out)}}
    cfg = load_config(raw=raw)
    Trainer(cfg, get_task("repair").from_config(cfg), quiet=True).fit()
    return out / "weights.safetensors"


def repair(*args):
    from vitrestore.cli import main

    return CliRunner().invoke(main, ["repair", *map(str, args), "-q"])


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), smooth_image(np.random.default_rng(4), 40, 48))
    return path


def test_the_detector_trains_and_reports_f1(tiny_detector):
    metrics = [json.loads(line) for line in (tiny_detector.parent / "metrics.jsonl").read_text().splitlines()]
    assert any("val_f1" in m for m in metrics)


def test_the_detector_gives_one_logit_per_pixel_and_sensitivity_moves_its_cut(tiny_detector):
    from vitrestore.tasks.repair import cut_logit
    from vitrestore.tasks import load_model

    model = load_model(str(tiny_detector), device="cpu")
    x = torch.rand(2, 3, 40, 48)
    logits = model.generator(x)
    assert logits.shape == (2, 1, 40, 48)  # (B, 1, H, W): the damage's logit
    mask = model.task.postprocess(logits, x)
    assert mask.shape == (2, 3, 40, 48) and set(mask.unique().tolist()) <= {0.0, 1.0}
    cuts = [cut_logit(0.9, s) for s in (0, 0.25, 0.5, 0.75, 1)]
    assert cuts == sorted(cuts, reverse=True) and cuts[2] == pytest.approx(np.log(9))
    found = [model.task.postprocess(logits, x, sensitivity=s).sum() for s in (0, 0.5, 1)]
    assert found == sorted(found)  # more sensitive: at least as many pixels


def test_nothing_found_keeps_the_photo_byte_identical(tiny_detector, tiny_inpaint_weights, photo, tmp_path):
    masks = tmp_path / "masks" / "new"  # made where missing, as -o is
    done = repair(photo, "--model", tiny_detector, "--fill", tiny_inpaint_weights, "--sensitivity", "0",
                  "--mask-out", masks)
    assert done.exit_code == 0, done.output
    assert np.array_equal(read_image(tmp_path / "p_repaired.png").pixels, read_image(photo).pixels)
    assert not read_image(masks / "p_mask.png").pixels.any()


def some_found(detector, photo) -> str:
    """The sensitivity at which the untrained detector finds about half of the photo: its cut
    (tasks/repair.py's cut_logit) at the median of its logits on it."""
    from vitrestore.tasks.repair import SENSITIVITY_SPAN
    from vitrestore.tasks import load_model

    model = load_model(str(detector), device="cpu")
    x = torch.from_numpy(read_image(photo).pixels).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    with torch.no_grad():
        median = float(model.generator(x).median())
    t = model.task.options.threshold
    return repr(0.5 + (float(np.log(t / (1 - t))) - median) / SENSITIVITY_SPAN)


def test_user_strokes_join_the_mask_and_only_the_mask_changes(tiny_detector, tiny_inpaint_weights, photo, tmp_path):
    strokes = np.zeros((40, 48), np.uint8)
    cv2.line(strokes, (3, 5), (40, 30), 255, 2)
    cv2.imwrite(str(tmp_path / "strokes.png"), strokes)
    (tmp_path / "masks").mkdir()
    for sensitivity in ("0", some_found(tiny_detector, photo)):  # nothing found / some found
        done = repair(photo, "--model", tiny_detector, "--fill", tiny_inpaint_weights, "--sensitivity", sensitivity,
                      "--mask", tmp_path / "strokes.png", "--mask-out", tmp_path / "masks", "--overwrite")
        assert done.exit_code == 0, done.output
        written = read_image(tmp_path / "masks" / "p_mask.png").pixels[..., 0]
        assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255}
        assert (written[strokes > 0] == 255).all()  # the user's strokes, all of them
        if sensitivity == "0":
            assert np.array_equal(written, strokes)
        before, after = read_image(photo).pixels, read_image(tmp_path / "p_repaired.png").pixels
        outside = written == 0
        assert np.array_equal(after[outside], before[outside])  # untouched outside the mask, byte for byte
        assert not np.array_equal(after[~outside], before[~outside])  # and filled inside it


def test_a_photo_all_damage_and_a_tiny_photo_each_get_one_line(tiny_detector, tiny_inpaint_weights, photo, tmp_path):
    cv2.imwrite(str(tmp_path / "all.png"), np.full((40, 48), 255, np.uint8))
    done = repair(photo, "--model", tiny_detector, "--fill", tiny_inpaint_weights, "--mask", tmp_path / "all.png")
    assert done.exit_code != 0
    assert "p.png: the damage found and --mask covers the whole photo" in done.output
    assert not (tmp_path / "p_repaired.png").exists()
    (tmp_path / "masks").mkdir()
    done = repair(photo, "--model", tiny_detector, "--fill", tiny_inpaint_weights, "--mask", tmp_path / "all.png",
                  "--mask-out", tmp_path / "masks")
    assert done.exit_code != 0 and not list((tmp_path / "masks").iterdir())  # a failed photo leaves no mask
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((1, 1, 3), 128, np.uint8))
    done = repair(tmp_path / "dot.png", "--model", tiny_detector, "--fill", tiny_inpaint_weights)
    assert done.exit_code != 0 and "dot.png: image too small" in done.output
    assert [line for line in done.output.splitlines() if line.startswith("error")] == [
        next(line for line in done.output.splitlines() if "dot.png" in line)]


def test_mask_out_must_be_a_folder_and_other_tasks_models_are_refused(tiny_detector, tiny_inpaint_weights, photo,
                                                                       tmp_path):
    done = repair(photo, "--model", tiny_detector, "--mask-out", photo)
    assert done.exit_code == 2 and "p.png: --mask-out must be a folder, not a file" in done.output
    done = repair(photo, "--model", tiny_inpaint_weights)
    assert done.exit_code != 0 and "not a model for `vitrestore repair`" in done.output
    done = repair(photo, "--model", tiny_detector, "--fill", tiny_detector)  # before any photo is read
    assert done.exit_code == 2 and f"--fill {tiny_detector}: not a model for `vitrestore inpaint`" in done.output


def test_mask_out_never_replaces_an_input_and_its_masks_are_no_inputs(tiny_detector, tiny_inpaint_weights, tmp_path):
    """--mask-out may not be an input folder or the --mask folder, nor overwrite the photo or
    the --mask file; masks mirror the input folders (as -o does), and a folder of them (edited)
    goes back in as --mask: <stem>_mask.* matches, a photo without one gets none."""
    rng = np.random.default_rng(5)
    (tmp_path / "photos" / "inner").mkdir(parents=True)
    for name in ("photos/a.png", "photos/a_mask.png", "photos/inner/a.png", "photos/b.png"):
        cv2.imwrite(str(tmp_path / name), smooth_image(rng, 40, 48))
    base = ["--model", tiny_detector, "--fill", tiny_inpaint_weights, "--sensitivity", "0"]
    done = repair(tmp_path / "photos", *base, "--mask-out", tmp_path / "photos")
    assert done.exit_code == 2 and "--mask-out must not hold the inputs" in done.output
    before = (tmp_path / "photos" / "a_mask.png").read_bytes()
    done = repair(tmp_path / "photos" / "a.png", *base, "--mask", tmp_path / "photos" / "a_mask.png",
                  "--mask-out", tmp_path / "photos")
    assert done.exit_code == 1 and "--mask-out would overwrite" in done.output and "an input" in done.output
    assert (tmp_path / "photos" / "a_mask.png").read_bytes() == before

    (tmp_path / "photos" / "masks").mkdir()  # inside the input folder: its masks are never photos to repair
    done = repair(tmp_path / "photos", "-r", *base, "--mask-out", tmp_path / "photos" / "masks")
    assert done.exit_code == 0, done.output
    written = sorted(p.relative_to(tmp_path / "photos" / "masks").as_posix()
                     for p in (tmp_path / "photos" / "masks").rglob("*.png"))
    assert written == ["a_mask.png", "a_mask_mask.png", "b_mask.png", "inner/a_mask.png"]
    again = repair(tmp_path / "photos", "-r", *base, "--mask-out", tmp_path / "photos" / "masks", "--overwrite")
    assert again.exit_code == 0 and not list((tmp_path / "photos" / "masks").rglob("*_mask_mask_mask.png"))

    strokes = np.zeros((40, 48), np.uint8)
    strokes[10:14, 5:40] = 255
    cv2.imwrite(str(tmp_path / "photos" / "masks" / "b_mask.png"), strokes)  # the user edits one mask
    (tmp_path / "photos" / "masks" / "a_mask.png").unlink()
    done = repair(tmp_path / "photos", *base, "--mask", tmp_path / "photos" / "masks", "--overwrite")
    assert done.exit_code == 0, done.output  # a.png has no mask any more: none added
    out, src = read_image(tmp_path / "photos" / "b_repaired.png").pixels, read_image(tmp_path / "photos" / "b.png").pixels
    assert np.array_equal(out[strokes == 0], src[strokes == 0]) and not np.array_equal(out, src)
    done = repair(tmp_path / "photos", *base, "--mask", tmp_path / "photos" / "masks",
                  "--mask-out", tmp_path / "photos" / "masks")
    assert done.exit_code == 2 and "--mask-out is the --mask folder" in done.output


def test_the_model_alone_names_its_output_as_the_mask_it_is(tiny_detector, photo, tmp_path):
    from vitrestore.cli import main

    done = CliRunner().invoke(main, ["restore", str(photo), "--weights", str(tiny_detector), "-q"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "p_damage.png").exists() and not (tmp_path / "p_repaired.png").exists()


def test_denoise_is_a_grain_pass_over_the_whole_repaired_photo(tiny_detector, tiny_inpaint_weights, tmp_path):
    rng = np.random.default_rng(7)
    grainy = np.clip(smooth_image(rng, 40, 48) + rng.normal(0, 12, (40, 48, 3)), 0, 255).round().astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grainy)
    done = repair(tmp_path / "g.png", "--model", tiny_detector, "--fill", tiny_inpaint_weights, "--sensitivity", "0",
                  "--denoise", "12")
    assert done.exit_code == 0, done.output
    out = read_image(tmp_path / "g_repaired.png").pixels.astype(np.float32)
    lap = lambda a: float(np.abs(cv2.Laplacian(a, cv2.CV_32F)).mean())  # noqa: E731
    assert lap(out) < 0.7 * lap(grainy.astype(np.float32))  # the grain is gone (the shipped denoise model ran)


def test_a_clip_is_repaired_frame_by_frame_and_mask_out_refuses_it(tiny_detector, tiny_inpaint_weights, tmp_path):
    pytest.importorskip("av")
    from test_video_io import make_clip, packets, pts
    from vitrestore.io.video import frames

    src = make_clip(tmp_path / "clip.mp4", n=4)
    stroke = np.zeros((48, 64), np.uint8)
    stroke[20:24, 10:50] = 255  # a still scratch on every frame
    cv2.imwrite(str(tmp_path / "scratch.png"), stroke)
    base = ["--model", tiny_detector, "--fill", tiny_inpaint_weights, "--sensitivity", "0", "--mask",
            tmp_path / "scratch.png"]
    done = repair(src, *base, "--no-steady")
    assert done.exit_code == 0, done.output
    out = tmp_path / "clip_repaired.mp4"
    assert pts(out) == pts(src) and packets(out, "audio") == packets(src, "audio")
    (tmp_path / "png").mkdir()
    for f in frames(src):  # the frames as photos, through the image path
        cv2.imwrite(str(tmp_path / "png" / f"{f.index}.png"), f.rgb[:, :, ::-1])
    done = repair(tmp_path / "png", *base, "-o", tmp_path / "png_out")
    assert done.exit_code == 0 and len(list((tmp_path / "png_out").iterdir())) == 4, done.output
    for f, after in zip(frames(src), frames(out)):  # each frame repaired as its photo is (+ the codec)
        photo = cv2.imread(str(tmp_path / "png_out" / f"{f.index}.png"))[:, :, ::-1]
        assert np.abs(after.rgb.astype(int) - photo).mean() < 3
        assert np.abs(after.rgb.astype(int) - f.rgb)[stroke == 0].mean() < 3  # outside the scratch: as it was
    # one <stem>_mask.png a photo: a clip's frames would overwrite it one after another
    done = repair(src, *base,
                  "--mask-out", tmp_path / "masks", "-o", tmp_path / "o")
    assert done.exit_code == 1 and "clip.mp4: --mask-out writes one mask a photo" in done.output, done.output
    assert list((tmp_path / "masks").iterdir()) == [] and not (tmp_path / "o" / "clip_repaired.mp4").exists()
    assert not list((tmp_path / "o").glob(".*"))  # no pieces left
