"""The studio's video clips (issue 33): an upload's check and its index of frame times
(`read_clip`), and one frame decoded on demand (`decode_frame`). A job runs a clip through the
CLI's own pipeline (vitrestore/batch/clip.py's `run_clip`, from server.py); nothing here encodes.

    info, facts = read_clip(path, max_pixels)   # ClipInfo, ClipFacts; VideoError (one line), ClipTooLarge
    rgb = decode_frame(path, facts, n)          # (H, W, 3) uint8, frame n as stored

The check reads every packet of the clip (no decoding; measured: a 135 MB 720p H.264 clip of
300 frames in 0.5 s, one frame of it decoded in 0.04-0.39 s with a keyframe every 60), so a
clip cut short (its packets end before the time its container declares, or its index points
past the end) is refused at upload, not half-way through a job; it decodes the first and the
last frame, so a clip that opens but cannot be decoded is refused too. Memory stays bounded:
packets are read one at a time, a frame is decoded by seeking to the keyframe before it, and
the index holds one integer a frame.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..io.video import ClipInfo, VideoError, ffmpeg_reason, frame_rgb, frames, open_clip, probe, video_stream

DECLARES_DURATION = (".mp4", ".mov", ".mkv", ".webm")  # AVI's duration is estimated from its size: no check
NO_SEEK = (".avi",)  # AVI keeps no presentation times (its frames come out of a seek out of order): decoded from the start


class ClipTooLarge(VideoError):
    """A clip whose frames are over the studio's megapixel limit (HTTP 413)."""


@dataclass(frozen=True)
class ClipFacts:
    """What the studio knows of a stored clip: its frame count, rate, other streams, and each
    frame's presentation time (the index a frame is decoded by)."""

    frames: int
    rate: float  # average frames per second
    streams: tuple[str, ...]  # the other streams, copied into a result as they are ("audio aac")
    rotation: int  # counter-clockwise degrees a player turns the picture (frames are served as stored)
    time_base: Fraction
    pts: array  # ("q") each frame's presentation time in time_base units, in display order

    def time(self, n: int) -> float:
        """Frame n's time in seconds from the first frame."""
        return float((self.pts[n] - self.pts[0]) * self.time_base)

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last (its share of the average rate)."""
        return self.time(self.frames - 1) + 1 / self.rate if self.frames else 0.0

    def public(self, image_id: str) -> dict[str, Any]:
        return {"frames": self.frames, "rate": round(self.rate, 3), "duration": round(self.duration, 3),
                "streams": list(self.streams), "rotation": self.rotation,
                "frame": f"/api/images/{image_id}/frames/"}  # + the frame's index: GET one frame as PNG


def read_clip(path: Path, max_pixels: int) -> tuple[ClipInfo, ClipFacts]:
    """The clip at `path` checked for the studio: a video stream with a picture size, frames of
    at most `max_pixels` (ClipTooLarge), at least one frame, every packet there (not cut short),
    the first and last frames decodable. VideoError in one line otherwise (the path left out)."""
    path = Path(path)
    info = probe(path)
    if info.width * info.height > max_pixels:
        raise ClipTooLarge(f"its frames are {info.width}x{info.height} ({info.width * info.height / 1e6:.1f} "
                           f"megapixels), over the limit of {max_pixels / 1e6:g} megapixels")
    pts, end = _packet_times(path)
    if not pts:
        raise VideoError("the video has no frames")
    facts = ClipFacts(len(pts), float(info.rate), info.other_streams, info.rotation, info.time_base,
                      array("q", sorted(pts)))
    declared = info.duration if path.suffix.lower() in DECLARES_DURATION else 0.0
    if declared and end is not None and declared - end > max(1.5 / facts.rate, 0.01 * declared):
        raise VideoError(f"the file is cut short: its data ends at {end:.2f} s of its {declared:.2f} s "
                         f"(an unfinished download or copy?)")
    for n in (0, facts.frames - 1):
        decode_frame(path, facts, n)
    return info, facts


def _packet_times(path: Path) -> tuple[list[int], float | None]:
    """(the video packets' presentation times, in the stream's time base; the time in seconds
    from the first packet to where the last packet of any stream ends, None where none says).
    Packets without a time get one from the rate (an AVI's may have none)."""
    import av  # noqa: PLC0415

    size = path.stat().st_size
    with open_clip(path) as c:
        v = video_stream(c)
        step = 1 / (float(v.average_rate or v.guessed_rate or 25) * v.time_base)  # a frame in time-base units
        pts: list[int] = []
        start, end = None, None
        try:
            for packet in c.demux():
                if not packet.size:
                    continue
                if packet.pos is not None and packet.pos >= 0 and packet.pos + packet.size > size:
                    raise VideoError(f"the file is cut short: its index points past its end ({size} bytes)")
                if packet.stream.index == v.index:
                    pts.append(packet.pts if packet.pts is not None else packet.dts if packet.dts is not None
                               else round(len(pts) * step))
                if packet.pts is not None and packet.time_base is not None:
                    t = float(packet.pts * packet.time_base)
                    start = t if start is None else min(start, t)
                    end = max(end or t, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        except av.FFmpegError as exc:
            raise VideoError(f"the video breaks off after {len(pts)} frames ({ffmpeg_reason(exc)})") from None
    return pts, (end - start if end is not None else None)


def decode_frame(path: Path, facts: ClipFacts, n: int) -> np.ndarray:
    """Frame `n` (0 <= n < facts.frames) as (H, W, 3) uint8 RGB, as stored (rotation not
    applied): a seek to the keyframe at or before its time, then decoded up to it (one group
    of pictures at most; an AVI from its start). VideoError where the clip breaks off before it."""
    import av  # noqa: PLC0415

    if not 0 <= n < facts.frames:
        raise IndexError(f"frame {n} is not in the clip (0 to {facts.frames - 1})")
    if Path(path).suffix.lower() in NO_SEEK:
        for frame in frames(path, start=n):
            return frame.rgb
        raise VideoError(f"frame {n} cannot be decoded (the clip ends before it)")
    target = facts.pts[n]
    with open_clip(Path(path)) as c:
        v = video_stream(c)
        try:
            c.seek(target, stream=v, backward=True, any_frame=False)
            last = None
            for frame in c.decode(v):
                last = frame
                if frame.pts is None or frame.pts >= target:
                    break
            if last is None:
                raise VideoError(f"frame {n} cannot be decoded (no picture after the seek)")
            return frame_rgb(last)  # by its own matrix and range, as a job decodes it
        except av.FFmpegError as exc:
            raise VideoError(f"frame {n} cannot be decoded ({ffmpeg_reason(exc)})") from None
