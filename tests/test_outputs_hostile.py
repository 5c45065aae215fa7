"""Reports and outputs against hostile use (issue 30): a report never replaces an input or an
output of the run, nor another file without --overwrite; what an output needs is checked
before the first image (writable folder, name length, format size limits, a folder in the
output's place); unusable entries in an input folder each fail with their reason."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from test_batch_hostile import errors, photo, run
from vitrestore.batch import plan as batch
from vitrestore.io.images import partial_stem, remove_stale_partials, write_image


def test_report_never_replaces_an_input_or_an_output(tmp_path, tiny_weights):
    src = photo(tmp_path / "a.png")
    before = src.read_bytes()
    (tmp_path / "out").mkdir()
    for report, out_dir, word in ((src, "out", "input"), (tmp_path / "out" / "a.png", "out", "output"),
                                  (tmp_path / "new", "new", "output")):  # the -o folder the run would make
        code, out = run("denoise", src, "-o", tmp_path / out_dir, "--report", report, "--overwrite",
                        "--model", tiny_weights, "-q")
        assert code == 2 and f"would overwrite the {word}" in errors(out)[0], out
    assert src.read_bytes() == before and not list((tmp_path / "out").iterdir())  # refused before any work
    assert not (tmp_path / "new").exists()
    code, out = run("denoise", src, "-o", tmp_path / "one.png", "--report", tmp_path / "one.png",
                    "--model", tiny_weights, "-q")
    assert code == 2 and "would overwrite the output" in out and not (tmp_path / "one.png").exists()


def test_report_over_the_mask_is_refused(tmp_path, tiny_inpaint_weights):
    src = photo(tmp_path / "p.png")
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.pad(np.full((10, 10), 255, np.uint8), ((5, 25), (5, 41))))
    code, out = run("inpaint", src, "--mask", mask, "--report", mask, "--overwrite", "--model",
                    tiny_inpaint_weights, "-q")
    assert code == 2 and "would overwrite the input" in errors(out)[0], out
    assert cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE).max() == 255


def test_report_replaces_another_file_only_with_overwrite_but_an_earlier_report_always(tmp_path, tiny_weights):
    src = photo(tmp_path / "a.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    code, out = run("denoise", src, "--report", notes, "--model", tiny_weights, "-q")
    assert code == 2 and "not a vitrestore report" in errors(out)[0] and notes.read_text() == "mine"
    assert not (tmp_path / "a_denoised.png").exists()  # checked before any work
    report = tmp_path / "r.json"
    for _ in range(2):  # rerunning the same command replaces its own report
        code, out = run("denoise", src, "--report", report, "--model", tiny_weights, "-q")
        assert code == 0, out
    assert json.loads(report.read_text())["summary"]["skipped"] == 1
    code, out = run("denoise", src, "--report", notes, "--overwrite", "--model", tiny_weights, "-q")
    assert code == 0 and json.loads(notes.read_text())["vitrestore_report"] == 1


def test_inpaint_output_never_replaces_the_mask(tmp_path, tiny_inpaint_weights):
    src = photo(tmp_path / "p.png")
    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.pad(np.full((10, 10), 255, np.uint8), ((5, 25), (5, 41))))
    before = mask.read_bytes()
    code, out = run("inpaint", src, "--mask", mask, "-o", mask, "--overwrite", "--model", tiny_inpaint_weights, "-q")
    assert code == 1 and "would overwrite an input" in errors(out)[0] and mask.read_bytes() == before


def test_output_folder_equal_to_the_input_folder_is_refused(tmp_path, tiny_weights):
    d = tmp_path / "d"
    photo(d / "a.png")
    code, out = run("denoise", d, "-o", d, "--format", "jpg", "--model", tiny_weights, "-q")
    assert code == 2 and "input folder itself" in errors(out)[0] and sorted(os.listdir(d)) == ["a.png"]


def test_an_output_name_taken_by_a_folder_fails(tmp_path, tiny_weights):
    d = tmp_path / "d"
    photo(d / "a.png")
    (d / "a_denoised.png").mkdir()
    code, out = run("denoise", d, "--model", tiny_weights, "-q")
    assert code == 1 and "is a folder" in errors(out)[0] and "0 skipped" in out, out


def test_broken_symlinks_and_fifos_in_a_folder_fail_with_their_reason(tmp_path, tiny_weights):
    d = tmp_path / "d"
    photo(d / "a.png")
    os.symlink(tmp_path / "gone.png", d / "broken.png")
    os.mkfifo(d / "pipe.png")
    (d / "notes.txt").write_text("not an image name: ignored")
    code, out = run("denoise", d, "--model", tiny_weights, "-q")
    text = "\n".join(errors(out))
    assert code == 1 and "1 written" in out, out
    assert "broken.png: no such file or folder (broken symlink)" in text and "pipe.png: not a regular file" in text
    assert len(errors(out)) == 2


def test_output_folder_that_cannot_be_written_fails_before_the_model(tmp_path, tiny_weights):
    src = photo(tmp_path / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = run("denoise", src, "-o", blocker / "out", "--model", tiny_weights, "-q")
    assert code == 2 and "is not a folder" in errors(out)[0], out
    if batch.unwritable_reason(tmp_path) is None and os.geteuid() != 0:  # permissions bind a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        code, out = run("denoise", src, "-o", locked, "--model", tiny_weights, "-q")
        assert code == 2 and "not writable" in errors(out)[0], out


def test_read_only_folder_is_found_by_probing(tmp_path, monkeypatch):
    # root passes every permission check, so the probe is what catches a read-only mount
    def refuse(*a, **k):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(batch.tempfile, "TemporaryFile", refuse)
    assert "not writable (Read-only file system)" in batch.unwritable_reason(tmp_path / "new" / "deeper")
    with pytest.raises(ValueError, match="-o: folder .* is not writable"):
        batch.plan_jobs([photo(tmp_path / "a.png")], tmp_path / "out", "denoised")


def test_long_names_fit_their_temporary_file_and_too_long_ones_fail_first(tmp_path, tiny_weights):
    src = photo(tmp_path / "a.png")
    long = tmp_path / ("x" * 246 + ".png")  # 250 bytes: legal, but its temporary name would not be
    code, out = run("denoise", src, "-o", long, "--model", tiny_weights, "-q")
    assert code == 0 and long.is_file(), out
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    too_long = photo(tmp_path / ("y" * 250 + ".png"))  # its output name would be 263 bytes
    code, out = run("denoise", too_long, "--model", tiny_weights, "-q")
    assert code == 1 and "263 bytes long" in errors(out)[0] and ".partial" not in out, out
    code, out = run("denoise", src, "-o", tmp_path / ("z" * 300) / "o.png", "--model", tiny_weights, "-q")
    assert code == 2 and "300 bytes" in errors(out)[0], out


def test_stale_partials_of_long_names_are_found():
    name = "é" * 120 + ".png"  # 244 bytes
    stem = partial_stem(name)
    assert len(f".{stem}.99999999-12345678.partial".encode()) <= 255 and stem != partial_stem(name[1:])


def test_stale_partial_of_a_long_name_is_removed(tmp_path):
    name = "q" * 240 + ".png"
    stale = tmp_path / f".{partial_stem(name)}.999999999-1.partial"  # no such process
    stale.write_bytes(b"half")
    assert remove_stale_partials(tmp_path, {name}) == 1 and not stale.exists()


@pytest.mark.parametrize("fmt, width, limit", [("jpg", 32760, "65,500"), ("webp", 8200, "16,383")])
def test_outputs_too_large_for_their_format_fail_before_the_model(tmp_path, tiny_upscale_weights, monkeypatch,
                                                                   fmt, width, limit):
    from vitrestore.engine.runtime import Model

    src = tmp_path / "wide.png"
    write_image(src, np.full((8, width, 3), 128, np.uint8))
    monkeypatch.setattr(Model, "run_arrays", lambda *a, **k: pytest.fail("the model ran"))
    code, out = run("restore", src, "--weights", tiny_upscale_weights, "--format", fmt, "-q")
    assert code == 1 and f"can hold ({limit} px a side)" in errors(out)[0], out
    assert "imencode" not in out and "WARN" not in out and not list(tmp_path.glob("wide_*"))


def test_encoder_refuses_oversize_with_one_line():
    with pytest.raises(ValueError, match="larger than WEBP can hold"):
        write_image("/nonexistent/x.webp", np.zeros((8, 16_400, 3), np.uint8))


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_outscale_sigma_and_strength_refuse_nan(tmp_path, value):
    src = photo(tmp_path / "a.png")
    for args in (["upscale", src, "--outscale", value], ["denoise", src, "--sigma", value],
                 ["stylize", src, "--style", "starry-night", "--strength", value]):
        code, out = run(*args, "-q")
        assert code == 2 and ("must be a number" in errors(out)[0] or "not in the range" in errors(out)[0]), out
    assert sorted(os.listdir(tmp_path)) == ["a.png"]
