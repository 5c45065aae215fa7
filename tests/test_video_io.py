"""vitrestore/io/video.py on tiny clips made here with PyAV (64x48, a dozen frames, an AAC
tone): frames and their timestamps (a variable rate too) kept, the audio copied packet for
packet, nothing left at the output on a failure, and bad clips refused in one line."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from vitrestore.io.video import ClipWriter, VideoError, frames, probe  # noqa: E402

MS = Fraction(1, 1000)


def make_clip(path, n=12, w=64, h=48, steps=(83,), audio=True, rotate=None):
    """A clip of `n` frames (a moving bar), their times `steps` ms apart in turn, with a 440 Hz tone."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=12)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.time_base = v.codec_context.time_base = MS
        v.options = {"crf": "10"}
        if rotate is not None:
            v.set_display_rotation(rotate)
        a = c.add_stream("aac", rate=48000) if audio else None
        if a is not None:
            a.layout = "mono"
        t = 0
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[..., 0] = 20 * i % 255
            img[:, i * 4 % w] = 255
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t, MS
            t += steps[i % len(steps)]
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        if a is not None:
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(48000 * n // 12) / 48000)).astype(np.float32)
            for k in range(0, len(tone), 1024):
                fr = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="flt", layout="mono")
                fr.sample_rate, fr.pts = 48000, k
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def packets(path, kind):
    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(**{kind: 0}) if p.dts is not None]


def pts(path):
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


@pytest.mark.parametrize("steps", [(83,), (120, 50)], ids=["constant", "variable"])
def test_frames_timestamps_and_audio_are_kept(tmp_path, steps):
    src = make_clip(tmp_path / "in.mp4", steps=steps)
    info = probe(src)
    assert (info.width, info.height, info.frames, info.other_streams) == (64, 48, 12, ("audio aac",))
    with ClipWriter(tmp_path / "out.mp4", info) as w:
        for f in frames(src):
            w.write(f, 255 - f.rgb)
    assert pts(tmp_path / "out.mp4") == pts(src)  # every frame at its time
    assert packets(tmp_path / "out.mp4", "audio") == packets(src, "audio")  # the sound untouched
    out = [f.rgb.astype(int) for f in frames(tmp_path / "out.mp4")]
    ref = [255 - f.rgb.astype(int) for f in frames(src)]
    assert len(out) == 12 and max(np.abs(a - b).mean() for a, b in zip(out, ref)) < 3  # CRF 18


def test_rotation_is_kept_and_frames_resume_from_an_index(tmp_path):
    src = make_clip(tmp_path / "in.mov", rotate=90, audio=False)
    info = probe(src)
    with ClipWriter(tmp_path / "out.mkv", info, codec="ffv1") as w:
        for f in frames(src):
            w.write(f, f.rgb)
    assert probe(tmp_path / "out.mkv").rotation == info.rotation == 90
    tail = list(frames(src, start=9))
    assert [f.index for f in tail] == [9, 10, 11]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(tail, list(frames(tmp_path / "out.mkv"))[9:]))


def test_a_failure_leaves_nothing_at_the_output(tmp_path):
    src = make_clip(tmp_path / "in.mp4")
    with pytest.raises(RuntimeError):
        with ClipWriter(tmp_path / "out.mp4", probe(src)) as w:
            for f in frames(src):
                w.write(f, f.rgb)
                if f.index == 5:
                    raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_bad_clips_are_one_line_errors(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        probe(tmp_path / "text.mp4")
    with av.open(str(tmp_path / "sound.mkv"), "w") as c:  # audio only
        a = c.add_stream("aac", rate=48000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        fr.sample_rate = 48000
        for p in list(a.encode(fr)) + list(a.encode(None)):
            c.mux(p)
    with pytest.raises(VideoError, match="no video stream"):
        probe(tmp_path / "sound.mkv")
    whole = make_clip(tmp_path / "whole.mp4", n=24, audio=False).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(VideoError) as err:
        list(frames(tmp_path / "cut.mp4"))
    assert "\n" not in str(err.value)
    (tmp_path / "unknown.mp4").write_bytes(whole.replace(b"avc1", b"zzz1"))  # a codec no decoder knows
    with pytest.raises(VideoError, match="codec is one FFmpeg does not know"):
        probe(tmp_path / "unknown.mp4")
    for name, message in (("empty.mkv", "the video has no frames"), ("empty.mp4", "no video stream")):
        with av.open(str(tmp_path / name), "w") as c:  # a video stream without a frame
            v = c.add_stream("libx264", rate=12)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
            c.start_encoding()
        with pytest.raises(VideoError, match=message):
            probe(tmp_path / name)
    with pytest.raises(VideoError, match="does not go in .webm"):
        ClipWriter(tmp_path / "x.webm", probe(tmp_path / "whole.mp4"), codec="h264")
    assert not list(tmp_path.glob(".x.webm*"))


def _tagged_clip(path, pix_fmt, color_range, colorspace, primaries, trc, n=3):
    """A short clip in `pix_fmt` with its colour tags set, from a gradient spanning 0..255."""
    ramp = np.linspace(0, 255, 64).round().astype(np.uint8)
    img = np.stack([np.tile(ramp, (48, 1)), np.tile(ramp[::-1], (48, 1)), np.full((48, 64), 128, np.uint8)], -1)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=12)
        v.width, v.height, v.pix_fmt = 64, 48, pix_fmt
        cc = v.codec_context
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = color_range, colorspace, primaries, trc
        v.options = {"crf": "0"}
        for i in range(n):
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace=colorspace, dst_color_range=color_range)
            f.pts, f.time_base = i, Fraction(1, 12)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


@pytest.mark.parametrize("pix_fmt,color_range,colorspace,primaries,trc", [
    ("yuv420p", 2, 1, 1, 1),  # full range BT.709 (a phone's)
    ("yuv444p", 1, 1, 1, 1),
    ("yuv422p", 1, 6, 6, 6),  # limited range BT.601
])
def test_colour_tags_range_and_chroma_sampling_are_kept(tmp_path, pix_fmt, color_range, colorspace, primaries, trc):
    src = _tagged_clip(tmp_path / "in.mp4", pix_fmt, color_range, colorspace, primaries, trc)
    info = probe(src)
    with ClipWriter(tmp_path / "out.mp4", info, crf=0) as w:
        for f in frames(src):
            w.write(f, f.rgb)  # unchanged frames: only the codec between them
    out = probe(tmp_path / "out.mp4")
    assert (out.color_range, out.colorspace, out.color_primaries, out.color_trc) == (
        color_range, colorspace, primaries, trc)
    assert out.chroma == info.chroma == pix_fmt[3:6]
    a, b = next(frames(src)).rgb.astype(int), next(frames(tmp_path / "out.mp4")).rgb.astype(int)
    assert a.min() <= 2 and a.max() >= 253  # decoded by its range: blacks and whites are there
    assert np.abs(a - b).mean() < (0.01 if pix_fmt == "yuv444p" else 1.5)  # 4:4:4 at CRF 0: nothing lost


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".webm"])
def test_a_writer_alone_keeps_every_frame_in_every_container(tmp_path, suffix):
    src = make_clip(tmp_path / "in.mp4", n=6, audio=suffix != ".webm")  # (AAC goes in no WebM)
    with ClipWriter(tmp_path / f"out{suffix}", probe(src)) as w:
        for f in frames(src):
            w.write(f, 255 - f.rgb)
    assert len(list(frames(tmp_path / f"out{suffix}"))) == 6
