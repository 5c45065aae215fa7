"""vitrestore/batch/clip.py: a clip processed in pieces; an interruption keeps the finished
pieces, the same command resumes at the first missing one and writes the same bytes as an
uninterrupted run; another command starts over; the output path never holds a broken file."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")

from test_video_io import make_clip, packets  # noqa: E402
from vitrestore.batch.clip import parts_folder, run_clip  # noqa: E402


def invert(rgb):
    return 255 - rgb


class Stop(Exception):
    pass


def stopping_at(n):
    seen = []

    def process(rgb):
        if len(seen) == n:
            raise Stop
        seen.append(1)
        return invert(rgb)
    return process, seen


def test_an_interrupted_clip_resumes_and_equals_an_uninterrupted_run(tmp_path):
    src = make_clip(tmp_path / "in.mp4", n=40)
    whole = run_clip(src, tmp_path / "whole.mp4", invert, "invert")
    assert (whole.frames, whole.processed, whole.pieces) == (40, 40, 3)  # 16 + 16 + 8
    process, seen = stopping_at(20)
    with pytest.raises(Stop):
        run_clip(src, tmp_path / "out.mp4", process, "invert")
    assert not (tmp_path / "out.mp4").exists()
    assert sorted(p.name for p in parts_folder(tmp_path / "out.mp4").glob("piece-*")) == ["piece-000000.mp4"]
    again = run_clip(src, tmp_path / "out.mp4", invert, "invert")
    assert (again.frames, again.processed) == (40, 24)  # only the unfinished work
    assert (tmp_path / "out.mp4").read_bytes() == (tmp_path / "whole.mp4").read_bytes()
    assert not parts_folder(tmp_path / "out.mp4").exists()
    assert packets(tmp_path / "out.mp4", "audio") == packets(src, "audio")


def test_another_command_or_a_changed_source_starts_over(tmp_path):
    src = make_clip(tmp_path / "in.mp4", n=40)
    process, _ = stopping_at(20)
    with pytest.raises(Stop):
        run_clip(src, tmp_path / "out.mp4", process, "invert")
    other = run_clip(src, tmp_path / "out.mp4", lambda rgb: rgb, "identity")
    assert other.processed == 40
    with pytest.raises(Stop):
        run_clip(src, tmp_path / "out2.mp4", stopping_at(20)[0], "invert")
    make_clip(src, n=40, steps=(90,))  # the source changed meanwhile
    assert run_clip(src, tmp_path / "out2.mp4", invert, "invert").processed == 40


def test_an_upscale_writes_the_larger_frames(tmp_path):
    src = make_clip(tmp_path / "in.mkv", n=5, audio=False)
    run_clip(src, tmp_path / "big.mkv", lambda rgb: np.repeat(np.repeat(rgb, 2, 0), 2, 1), "x2", codec="ffv1")
    from vitrestore.io.video import frames

    out = [f.rgb for f in frames(tmp_path / "big.mkv")]  # Matroska does not count its frames: decoded
    assert len(out) == 5 and out[0].shape == (96, 128, 3)


def test_a_steadied_clip_resumes_to_the_same_bytes(tmp_path):
    from vitrestore.steady import Steady

    src = make_clip(tmp_path / "in.mp4", n=40)
    run_clip(src, tmp_path / "whole.mp4", invert, "invert", steady=Steady())
    process, _ = stopping_at(20)
    with pytest.raises(Stop):
        run_clip(src, tmp_path / "out.mp4", process, "invert", steady=Steady())
    again = run_clip(src, tmp_path / "out.mp4", invert, "invert", steady=Steady())
    assert again.processed == 24  # (and the window's frames before the resumed piece, processed again, not written)
    assert (tmp_path / "out.mp4").read_bytes() == (tmp_path / "whole.mp4").read_bytes()


def test_two_shards_share_one_clip_and_the_last_joins_it(tmp_path):
    from vitrestore.steady import Steady

    src = make_clip(tmp_path / "in.mp4", n=40)  # 3 pieces: 0 and 2 for shard 1/2, 1 for shard 2/2
    run_clip(src, tmp_path / "whole.mp4", invert, "invert", steady=Steady())
    first = run_clip(src, tmp_path / "out.mp4", invert, "invert", steady=Steady(), shard=(1, 2))
    assert not first.joined and first.processed == 16 + 8 and not (tmp_path / "out.mp4").exists()
    assert sorted(p.name for p in parts_folder(tmp_path / "out.mp4").glob("piece-*")) == [
        "piece-000000.mp4", "piece-000002.mp4"]
    second = run_clip(src, tmp_path / "out.mp4", invert, "invert", steady=Steady(), shard=(2, 2))
    assert second.joined and second.processed == 16
    assert (tmp_path / "out.mp4").read_bytes() == (tmp_path / "whole.mp4").read_bytes()
    assert not parts_folder(tmp_path / "out.mp4").exists()


def test_a_joiner_at_work_is_left_alone_and_a_killed_one_blocks_nothing(tmp_path):
    import fcntl
    import os
    import subprocess
    import sys

    src = make_clip(tmp_path / "in.mp4", n=20)
    run_clip(src, tmp_path / "out.mp4", invert, "invert", shard=(1, 2))  # piece 0 of 2
    lock = parts_folder(tmp_path / "out.mp4") / "join.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process joining now
    try:
        busy = run_clip(src, tmp_path / "out.mp4", invert, "invert", shard=(2, 2))
    finally:
        os.close(fd)
    assert not busy.joined and not (tmp_path / "out.mp4").exists()
    # a joiner killed mid-join (kill -9): its lock file stays, its lock does not
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print(1, flush=True); time.sleep(60)", str(lock)],
                              stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"1"
    holder.kill()
    holder.wait()
    again = run_clip(src, tmp_path / "out.mp4", invert, "invert", shard=(2, 2))
    assert again.joined and again.processed == 0
    assert len(packets(tmp_path / "out.mp4", "video")) == 20
    assert not parts_folder(tmp_path / "out.mp4").exists()


def test_an_avi_of_several_pieces_joins(tmp_path):
    from vitrestore.io.video import frames

    src = make_clip(tmp_path / "in.mp4", n=40, audio=False)  # 3 pieces
    done = run_clip(src, tmp_path / "out.avi", invert, "invert")
    assert done.joined and done.pieces == 3
    got = list(frames(tmp_path / "out.avi"))
    assert len(got) == 40 and not list(tmp_path.glob(".*"))
    assert np.abs(got[20].rgb.astype(int) - invert(list(frames(src))[20].rgb)).mean() < 3


def test_a_tracked_clip_resumes_and_shares_to_the_same_bytes(tmp_path):
    """A state that runs through the whole clip (stylize's strokes on the picture): a resumed run
    or a share runs the track again from the first frame, so every frame gets what it got."""
    from vitrestore.motion import PixelTrack, anchored_noise

    src = make_clip(tmp_path / "in.mp4", n=40)
    track = PixelTrack()

    def tracked(rgb):  # the frame plus noise fixed to the picture: depends on every frame before
        noise = anchored_noise(track.coords, 3)[..., None] * 40  # (H, W, 1)
        return np.clip(rgb + noise, 0, 255).astype(np.uint8)

    whole = run_clip(src, tmp_path / "whole.mp4", tracked, "tracked", track=track)
    seen = []

    def stopping(rgb):
        if len(seen) == 20:
            raise Stop
        seen.append(1)
        return tracked(rgb)
    with pytest.raises(Stop):
        run_clip(src, tmp_path / "out.mp4", stopping, "tracked", track=track)
    again = run_clip(src, tmp_path / "out.mp4", tracked, "tracked", track=track)
    assert (whole.processed, again.processed) == (40, 24)
    assert (tmp_path / "out.mp4").read_bytes() == (tmp_path / "whole.mp4").read_bytes()
    run_clip(src, tmp_path / "shared.mp4", tracked, "tracked", track=track, shard=(2, 2))
    run_clip(src, tmp_path / "shared.mp4", tracked, "tracked", track=track, shard=(1, 2))
    assert (tmp_path / "shared.mp4").read_bytes() == (tmp_path / "whole.mp4").read_bytes()
    other = run_clip(src, tmp_path / "plain.mp4", tracked, "tracked", track=track)
    assert other.processed == 40


def test_a_failed_share_leaves_the_folder_to_the_shares_at_work(tmp_path):
    src = make_clip(tmp_path / "in.mp4", n=40, audio=False)
    with pytest.raises(Stop):  # share 2 at work: its first piece being written, none finished
        run_clip(src, tmp_path / "out.mp4", stopping_at(0)[0], "invert", shard=(2, 2))
    folder = parts_folder(tmp_path / "out.mp4")
    assert folder.exists() and (folder / "state.json").exists()  # kept for the other share
    at_work = folder / ".piece-000001.mp4.x.part.mp4"
    at_work.write_bytes(b"being written by share 2")
    with pytest.raises(Stop):
        run_clip(src, tmp_path / "out.mp4", stopping_at(0)[0], "invert", shard=(1, 2))
    assert at_work.exists()
    with pytest.raises(Stop):  # one process alone: nothing finished, nothing left
        run_clip(src, tmp_path / "solo.mp4", stopping_at(0)[0], "invert")
    assert not parts_folder(tmp_path / "solo.mp4").exists()
