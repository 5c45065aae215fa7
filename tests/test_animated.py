"""Animated GIF, APNG and WebP (vitrestore/io/animated.py): frames, per-frame durations, the loop
and transparency survive a read and a write; a still PNG is no animation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vitrestore.io.animated import AnimationError, is_animation, read_animation, write_animation

DURATIONS = [40, 80, 120, 40, 60, 100, 40, 80, 120, 40, 60, 100]


def frames(alpha=False):
    out = []
    for i in range(12):
        f = np.zeros((24, 32, 4 if alpha else 3), np.uint8)
        f[..., 0] = 20 * i
        f[4:12, 2 * i:2 * i + 6, 1] = 255
        if alpha:
            f[..., 3] = 255
            f[:, :4, 3] = 0  # a transparent stripe
        out.append(f)
    return out


def save(path, fs, loop=0):
    mode = "RGBA" if fs[0].shape[2] == 4 else "RGB"
    images = [Image.fromarray(f, mode) for f in fs]
    fmt = {".gif": "GIF", ".png": "PNG", ".webp": "WEBP"}[path.suffix]
    extra = {"disposal": 2} if fmt == "GIF" else ({"lossless": True} if fmt == "WEBP" else {})
    images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=DURATIONS, loop=loop,
                   **extra)
    return path


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "transparent"])
def test_a_round_trip_keeps_frames_durations_loop_and_alpha(tmp_path, suffix, alpha):
    src = save(tmp_path / f"in{suffix}", frames(alpha), loop=3)
    assert is_animation(src)
    anim = read_animation(src)
    assert len(anim.frames) == 12 and anim.durations == DURATIONS and anim.loop == 3 and anim.alpha == alpha
    inverted = [np.concatenate([255 - f[:, :, :3], f[:, :, 3:]], axis=2) for f in anim.frames]
    write_animation(tmp_path / f"out{suffix}", anim, inverted)
    again = read_animation(tmp_path / f"out{suffix}")
    assert (len(again.frames), again.durations, again.loop, again.alpha) == (12, DURATIONS, 3, alpha)
    if suffix != ".gif":  # lossless formats: the very pixels that show (a GIF has a palette; an animated
        # WebP does not keep the colour under fully transparent pixels)
        shown = (lambda f: f[..., 3] > 0) if alpha else (lambda f: np.ones(f.shape[:2], bool))  # noqa: E731
        assert all(np.array_equal(a[shown(b)], b[shown(b)]) for a, b in zip(again.frames, inverted))
    if alpha:
        assert all((f[:, :4, 3] == 0).all() and (f[:, 4:, 3] == 255).all() for f in again.frames)


def test_a_still_png_is_no_animation_and_a_broken_gif_is_one_line(tmp_path):
    Image.fromarray(frames()[0]).save(tmp_path / "still.png")
    assert not is_animation(tmp_path / "still.png")
    (tmp_path / "bad.gif").write_bytes(b"GIF89a" + b"\0" * 10)
    with pytest.raises(AnimationError, match="not a readable animation") as err:
        read_animation(tmp_path / "bad.gif")
    assert "\n" not in str(err.value)


def test_a_gif_through_a_command_keeps_its_timing(tmp_path, tiny_weights):
    from click.testing import CliRunner

    from vitrestore.cli import main

    save(tmp_path / "wave.gif", frames(), loop=0)
    save(tmp_path / "still_and_moving.webp", frames(True), loop=2)
    done = CliRunner().invoke(main, ["denoise", str(tmp_path), "--model", str(tiny_weights), "-q", "--format", "png"])
    assert done.exit_code == 0, done.output
    out = read_animation(tmp_path / "wave_denoised.gif")
    assert (len(out.frames), out.durations, out.loop) == (12, DURATIONS, 0)
    apng = read_animation(tmp_path / "still_and_moving_denoised.png")  # --format png: an APNG of it
    assert (len(apng.frames), apng.durations, apng.loop, apng.alpha) == (12, DURATIONS, 2, True)


def test_an_animated_webp_asked_as_jpeg_keeps_its_frames(tmp_path, tiny_weights):
    from click.testing import CliRunner

    from vitrestore.cli import main

    save(tmp_path / "moving.webp", frames(), loop=1)
    done = CliRunner().invoke(main, ["denoise", str(tmp_path / "moving.webp"), "--model", str(tiny_weights), "-q",
                                     "--format", "jpg"])
    assert done.exit_code == 0, done.output
    out = read_animation(tmp_path / "moving_denoised.webp")  # a JPEG holds no frames: the WebP stays one
    assert (len(out.frames), out.durations, out.loop) == (12, DURATIONS, 1)
