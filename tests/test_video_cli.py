"""Clips through the commands (issue 33): `vitrestore denoise clip.mp4` writes clip_denoised.mp4
with every frame at its time and the sound copied; clips in a folder are inputs too; bad clips
fail in one line with nothing written. Tiny clips made with PyAV, the tiny test model."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("av")

from test_video_io import make_clip, packets, pts  # noqa: E402
from vitrestore.io.video import frames  # noqa: E402


def run(*args):
    from vitrestore.cli import main

    return CliRunner().invoke(main, [*map(str, args), "-q"])


def test_a_clip_is_denoised_frame_by_frame_with_its_sound(tmp_path, tiny_weights):
    src = make_clip(tmp_path / "clip.mp4", n=6, steps=(120, 50))
    done = run("denoise", src, "--model", tiny_weights, "--no-steady")  # frame by frame, as images are
    assert done.exit_code == 0, done.output
    out = tmp_path / "clip_denoised.mp4"
    assert pts(out) == pts(src) and packets(out, "audio") == packets(src, "audio")
    assert (out.stat().st_mode & 0o777) == 0o644 & ~_umask()
    from vitrestore.tasks import load_model

    model = load_model(str(tiny_weights), device="cpu")
    for a, b in zip(frames(out), frames(src)):  # each frame as the image path would process it (+ the codec)
        assert np.abs(a.rgb.astype(int) - model.run_arrays([b.rgb])[0].astype(int)).mean() < 3


def test_clips_in_a_folder_and_an_output_folder(tmp_path, tiny_weights):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mkv", n=3, audio=False)
    make_clip(tmp_path / "in" / "b.mp4", n=3)
    done = run("denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", tiny_weights, "--codec", "ffv1")
    assert done.exit_code == 1 and "b.mp4: --codec ffv1 does not go in .mp4" in done.output, done.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.mkv"]  # the other clip is done
    done = run("denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", tiny_weights)
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mkv", "b.mp4"]
    assert len(list(frames(tmp_path / "out" / "a.mkv"))) == 3


def test_bad_clips_fail_in_one_line_and_leave_nothing(tmp_path, tiny_weights):
    (tmp_path / "text.mp4").write_text("no video here")
    whole = make_clip(tmp_path / "whole.mp4", n=24, audio=False).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "odd.mp4").write_bytes(whole.replace(b"avc1", b"zzz1"))  # an unknown codec
    (tmp_path / "whole.mp4").unlink()
    for name, words in (("text.mp4", "not a readable video"), ("cut.mp4", ""),
                        ("odd.mp4", "codec is one FFmpeg does not know")):
        done = run("denoise", tmp_path / name, "--model", tiny_weights)
        lines = [line for line in done.output.splitlines() if line.startswith("error")]
        assert done.exit_code == 1 and len(lines) == 1 and name in lines[0] and words in lines[0], done.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "odd.mp4", "text.mp4"]
    big = make_clip(tmp_path / "big.mp4", n=2, audio=False)
    done = run("denoise", big, "--model", tiny_weights, "--max-megapixels", "0.001")
    assert done.exit_code == 1 and "over --max-megapixels" in done.output


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_shards_split_one_clip_by_its_pieces(tmp_path, tiny_weights):
    src = make_clip(tmp_path / "long.mp4", n=40, audio=False)
    first = run("denoise", src, "--model", tiny_weights, "--shard", "1/2")
    assert first.exit_code == 0 and "0 written, 1 skipped" in first.output, first.output  # its pieces, not the clip
    assert not (tmp_path / "long_denoised.mp4").exists()
    second = run("denoise", src, "--model", tiny_weights, "--shard", "2/2")
    assert second.exit_code == 0, second.output
    assert len(list(frames(tmp_path / "long_denoised.mp4"))) == 40


def test_the_output_keeps_the_source_chroma_unless_chroma_says(tmp_path, tiny_weights):
    from vitrestore.io.video import probe

    src = make_clip(tmp_path / "c.mp4", n=3, audio=False)  # 4:2:0
    assert run("denoise", src, "--model", tiny_weights).exit_code == 0
    assert probe(tmp_path / "c_denoised.mp4").chroma == "420"
    done = run("denoise", src, "--model", tiny_weights, "--chroma", "444", "-o", tmp_path / "full.mp4")
    assert done.exit_code == 0, done.output
    assert probe(tmp_path / "full.mp4").pix_fmt == "yuv444p"


def test_inpaint_fills_a_clip_with_one_still_mask(tmp_path, tiny_inpaint_weights):
    import cv2

    src = make_clip(tmp_path / "clip.mp4", n=4)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:20, 20:40] = 255
    cv2.imwrite(str(tmp_path / "still.png"), mask)
    done = run("inpaint", src, "--mask", tmp_path / "still.png", "--model", tiny_inpaint_weights, "--no-steady")
    assert done.exit_code == 0, done.output
    out = tmp_path / "clip_inpainted.mp4"
    assert pts(out) == pts(src) and packets(out, "audio") == packets(src, "audio")
    for before, after in zip(frames(src), frames(out)):  # outside the mask: as it was (+ the codec)
        assert np.abs(after.rgb.astype(int) - before.rgb)[mask == 0].mean() < 3


def test_an_odd_sized_clip_is_one_line_and_444_writes_it(tmp_path, tiny_weights):
    src = make_clip(tmp_path / "odd.mp4", n=2, w=64, h=48, audio=False)
    import av

    with av.open(str(tmp_path / "odd.mkv"), "w") as c:  # 65x47 frames: only without chroma subsampling
        v = c.add_stream("ffv1", rate=12)
        v.width, v.height, v.pix_fmt = 65, 47, "bgr0"
        for i, f in enumerate(frames(src)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f.rgb[:47, :, :].repeat(2, 1)[:, :65]),
                                               format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    done = run("denoise", tmp_path / "odd.mkv", "--model", tiny_weights, "--chroma", "420")
    assert done.exit_code == 1 and "an odd size" in done.output and "Traceback" not in done.output, done.output
    assert not list(tmp_path.glob(".*")) and not (tmp_path / "odd_denoised.mkv").exists()
    done = run("denoise", tmp_path / "odd.mkv", "--model", tiny_weights)  # the source's: RGB, 4:4:4
    assert done.exit_code == 0, done.output
    assert len(list(frames(tmp_path / "odd_denoised.mkv"))) == 2


def test_sound_the_output_container_cannot_hold_fails_before_any_frame(tmp_path, tiny_weights):
    src = make_clip(tmp_path / "c.mp4", n=3)  # AAC sound: WebM takes Opus or Vorbis
    done = run("denoise", src, "--model", tiny_weights, "-o", tmp_path / "c.webm")
    assert done.exit_code == 1 and "audio stream (aac) cannot go in .webm" in done.output, done.output
    assert "0 written" in done.output and sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]
