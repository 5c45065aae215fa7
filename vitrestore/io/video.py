"""Video clips in and out, frame by frame, through PyAV (its wheels bundle FFmpeg: nothing to
install besides it). Issue 33's first layer: what a command needs to run a model over a clip.

    info = probe(path)                     # ClipInfo: size, rate, frames, rotation, streams; VideoError
    for frame in frames(path):             # Frame(index, pts, time_base, rgb (H, W, 3) uint8), streamed
        ...
    with ClipWriter(out, info, codec=None, crf=None) as w:   # a hidden file beside `out` until closed
        w.write(frame, rgb)                # the frame's own timestamp: variable rates are kept
    # on close the audio, subtitle and data streams of `info.path` are copied as they are, with the
    # chapters and the container's and the video stream's metadata (rotation); then the file is
    # renamed into place. An exception leaves nothing at `out`.

Memory does not grow with the clip: frames are decoded, processed and encoded one at a time,
and the copied streams are remuxed packet by packet at the end.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .atomic import replaced_atomically

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")

# the codec a container gets by default, and each codec's encoder, pixel formats by the source's
# chroma ("420", "422", "444") and default CRF (quality: lower is better; 18 for H.264 is
# "visually lossless" in x264's documentation)
DEFAULT_CODEC = {".mp4": "h264", ".mov": "h264", ".mkv": "h264", ".webm": "vp9", ".avi": "h264"}
YUV = {"420": "yuv420p", "422": "yuv422p", "444": "yuv444p"}
CODECS: dict[str, tuple[str, dict[str, str], int | None]] = {
    "h264": ("libx264", YUV, 18),
    "h265": ("libx265", YUV, 20),
    "vp9": ("libvpx-vp9", YUV, 24),
    # quality by profile, not CRF: 422 HQ, or 4444 for a 4:4:4 source
    "prores": ("prores_ks", {"420": "yuv422p10le", "422": "yuv422p10le", "444": "yuv444p10le"}, None),
    "ffv1": ("ffv1", {"420": "bgr0", "422": "bgr0", "444": "bgr0"}, None),  # lossless RGB, no YUV
}
ALLOWED = {".mp4": ("h264", "h265"), ".mov": ("h264", "h265", "prores"), ".mkv": tuple(CODECS),
           ".webm": ("vp9",), ".avi": ("h264",)}  # (FFV1 in AVI: a piece's first frame loses its time)


class VideoError(ValueError):
    """A clip that cannot be read or written, in one line (the path is the caller's to add)."""


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    width: int
    height: int
    frames: int  # as the container says (0: unknown until decoded)
    rate: Fraction  # average frames per second
    time_base: Fraction
    duration: float  # seconds, 0 where unknown
    rotation: int  # counter-clockwise degrees the player turns the picture (its display matrix)
    codec: str
    color_range: int  # FFmpeg's tags, kept on the output (range: 0 unspecified, 1 limited, 2 full)
    color_primaries: int  # (2: unspecified)
    other_streams: tuple[str, ...] = field(default=())  # "audio aac", "subtitle mov_text", ...
    pix_fmt: str = "yuv420p"
    color_trc: int = 2
    colorspace: int = 2  # the YUV matrix (1: BT.709, 5/6: BT.601, 9: BT.2020, 2: unspecified)

    @property
    def chroma(self) -> str:
        """The source's chroma sampling, "420", "422" or "444" (RGB formats are "444"): a clip is
        written with the same, so it loses no colour detail its source had and plays where its
        source plays (4:4:4 H.264 does not play in most browsers; a 4:2:0 source never gets it)."""
        if "444" in self.pix_fmt or self.pix_fmt.startswith(("gbr", "rgb", "bgr", "argb", "abgr")):
            return "444"
        return "422" if "422" in self.pix_fmt else "420"


@dataclass
class Frame:
    index: int
    pts: int | None
    time_base: Fraction
    rgb: np.ndarray  # (H, W, 3) uint8, as stored (rotation is metadata, kept, not applied)


def open_clip(path: Path) -> Any:
    import av  # noqa: PLC0415

    try:
        return av.open(str(path), "r")
    except EOFError:  # (av's EOFError) a container that ends after its header
        raise VideoError("the video has no frames (the file ends after its header)") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"not a readable video ({ffmpeg_reason(exc)})") from None


def ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def video_stream(container: Any) -> Any:
    if not container.streams.video:
        raise VideoError("no video stream in the file")
    return container.streams.video[0]


def probe(path: str | Path) -> ClipInfo:
    """The clip's facts; VideoError (one line) for a file that is no readable video."""
    path = Path(path)
    with open_clip(path) as c:
        v = video_stream(c)
        cc = v.codec_context
        if cc is None:
            raise VideoError("its video codec is one FFmpeg does not know: nothing can decode it")
        if not v.width or not v.height:
            raise VideoError(f"its video stream ({v.codec_context.name}) has no picture size: an unknown codec?")
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        duration = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6
        others = tuple(f"{s.type} {s.codec_context.name if s.codec_context else '?'}" for s in c.streams
                       if s.index != v.index)
        return ClipInfo(path, v.width, v.height, int(v.frames or 0), Fraction(rate), Fraction(v.time_base),
                        duration, _rotation(c, v), cc.name, int(cc.color_range or 0),
                        int(cc.color_primaries or 2), others, cc.format.name if cc.format else "yuv420p",
                        int(cc.color_trc or 2), int(cc.colorspace or 2))


def _rotation(container: Any, stream: Any) -> int:
    """The display rotation (counter-clockwise degrees) of the stream's first frame (its display
    matrix; an old "rotate" tag where there is none)."""
    import av  # noqa: PLC0415

    try:
        for frame in container.decode(stream):
            if frame.rotation:
                return int(round(frame.rotation)) % 360
            break
    except av.FFmpegError:
        pass  # a broken stream: frames() says so
    try:
        return int(float(stream.metadata.get("rotate", 0))) % 360
    except ValueError:
        return 0


def frames(path: str | Path, start: int = 0) -> Iterator[Frame]:
    """The clip's frames from index `start`, decoded one at a time as 8-bit RGB; VideoError for a
    clip that breaks off (a truncated file) before its first frame or mid-stream."""
    import av  # noqa: PLC0415

    path = Path(path)
    with open_clip(path) as c:
        v = video_stream(c)
        v.thread_type = "AUTO"
        index = 0
        try:
            for frame in c.decode(v):
                if index >= start:
                    yield Frame(index, frame.pts, Fraction(frame.time_base or v.time_base), frame_rgb(frame))
                index += 1
        except av.FFmpegError as exc:
            raise VideoError(f"the video breaks off after {index} frames ({ffmpeg_reason(exc)})") from None
    if index == 0:
        raise VideoError("the video has no frames")


def _matrix(colorspace: int) -> int | None:
    """The YUV matrix swscale converts by for FFmpeg's colorspace tag; None (unspecified) for a
    tag it has no matrix for."""
    return colorspace if colorspace in (1, 4, 5, 6, 7, 9) else None


def frame_rgb(frame: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a decoded frame, by its own matrix and range (a full-range clip
    decoded as limited loses its blacks and whites)."""
    full = frame.format.name.startswith("yuvj")  # the old full-range formats say so themselves
    return frame.to_ndarray(format="rgb24", src_colorspace=_matrix(frame.colorspace),
                            src_color_range=None if full else (frame.color_range or None))


def check_output(path: Path, codec: str | None, crf: int | None) -> tuple[str, int | None]:
    """(codec, crf) for a clip written to `path`: the container's default codec and the codec's
    default quality where not given; VideoError where they do not go together."""
    suffix = Path(path).suffix.lower()
    if suffix not in ALLOWED:
        raise VideoError(f"{Path(path).name}: not a video container vitrestore writes ({', '.join(VIDEO_SUFFIXES)})")
    codec = codec or DEFAULT_CODEC[suffix]
    if codec not in ALLOWED[suffix]:
        raise VideoError(f"--codec {codec} does not go in {suffix} (it takes {', '.join(ALLOWED[suffix])})")
    default_crf = CODECS[codec][2]
    if crf is not None and default_crf is None:
        raise VideoError(f"--codec {codec} takes no --crf")
    return codec, crf if crf is not None else default_crf


def count_frames(path: str | Path) -> int:
    """The clip's frames, counted from its video packets (no decoding)."""
    with open_clip(Path(path)) as c:
        v = video_stream(c)
        return sum(1 for packet in c.demux(v) if packet.size)


class ClipWriter:
    """Encodes frames to `path` (through a hidden temporary file beside it) and, on a clean
    close, copies the source clip's other streams, chapters and metadata, then renames the file
    into place. `codec`: one of CODECS (default per container); `crf`: the quality where the
    codec takes one. The output's size is the first frame's (an upscale's)."""

    def __init__(self, path: str | Path, source: ClipInfo, codec: str | None = None, crf: int | None = None,
                 keyint: int | None = None, part: bool = False, chroma: str | None = None):
        """`keyint`: a keyframe every this many frames, encoded the same on every run (a part of a
        clip written in pieces: each starts at a keyframe and the pieces join packet for packet;
        no writer makes B-frames); `part`: write
        only the encoded video (no streams copied), for `assemble`; `chroma`: "420", "422" or
        "444" (default: the source's; ffv1 is always RGB, prores at least 4:2:2)."""
        self.path, self.source, self.keyint, self.part = Path(path), source, keyint, part
        suffix = self.path.suffix.lower()
        self.codec, self.crf = check_output(self.path, codec, crf)
        self.encoder, pix_fmts, _ = CODECS[self.codec]
        self.pix_fmt = pix_fmts[chroma or source.chroma]
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".part{suffix}", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._out: Any = None
        self._stream: Any = None
        self.written = 0

    def __enter__(self) -> "ClipWriter":
        return self

    def _start(self, rgb: np.ndarray) -> None:
        import av  # noqa: PLC0415

        self._out = av.open(str(self.tmp), "w", format=_format(self.path.suffix.lower()))
        if self.pix_fmt.startswith(("yuv420", "yuv422")) and (rgb.shape[1] % 2 or (rgb.shape[0] % 2 and "420" in self.pix_fmt)):
            raise VideoError(f"frames of {rgb.shape[1]}x{rgb.shape[0]} (an odd size) cannot be written with "
                             f"{self.pix_fmt[3:6]} chroma: give --chroma 444 or --codec ffv1")
        s = self._out.add_stream(self.encoder, rate=self.source.rate)
        s.width, s.height = rgb.shape[1], rgb.shape[0]
        s.pix_fmt = self.pix_fmt
        cc, src = s.codec_context, self.source
        cc.color_primaries, cc.color_trc = src.color_primaries, src.color_trc  # tags: the pixels are not moved
        if not self.pix_fmt.startswith("bgr"):  # (ffv1 stays RGB: no matrix, no range)
            cc.colorspace, cc.color_range = src.colorspace, src.color_range
        s.time_base = self.source.time_base
        s.codec_context.time_base = self.source.time_base
        options = {"crf": str(self.crf)} if self.crf is not None else {}
        if self.encoder == "libvpx-vp9":
            options["b:v"] = "0"  # constant quality
        if self.encoder == "libx264":
            options["preset"] = "medium"
        # no B-frames: packets decode in presentation order, so each one's decode time is its
        # presentation time wherever it is joined or remuxed (Matroska keeps no decode times)
        s.codec_context.max_b_frames = 0
        if self.encoder in ("libx264", "libx265"):
            options["bf"] = "0"
        if self.keyint is not None:
            # the same frames give the same bytes on every run, so a resumed clip equals an
            # uninterrupted one: one encoder thread and x264's cpu-independent mode (measured:
            # without it 3 of 10 runs of one clip differed in their last piece; with it 20 of 20
            # were the same); the model dominates the time, not the encoder
            s.codec_context.thread_count = 1
            s.codec_context.gop_size = self.keyint
            if self.encoder == "libx264":
                options["x264-params"] = "threads=1:lookahead-threads=1:sliced-threads=0:deterministic=1:cpu-independent=1"
            if self.encoder in ("libx264", "libx265"):
                options["threads"] = "1"
                options["g"] = str(self.keyint)
                options["keyint_min"] = str(self.keyint)
        s.options = options
        if self.source.rotation:
            s.set_display_rotation(self.source.rotation)
        self._stream = s

    def write(self, frame: Frame, rgb: np.ndarray) -> None:
        """Encode `rgb` (H, W, 3) uint8 at `frame`'s timestamp."""
        import av  # noqa: PLC0415

        if self._out is None:
            self._start(rgb)
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if not self.pix_fmt.startswith("bgr"):  # to YUV by the source's matrix and range, as it was decoded
            src = self.source
            out = out.reformat(format=self.pix_fmt, dst_colorspace=_matrix(src.colorspace),
                               dst_color_range=src.color_range or None)
        out.pts = frame.pts if frame.pts is not None else self.written
        out.time_base = frame.time_base
        for packet in self._stream.encode(out):
            self._out.mux(packet)
        self.written += 1

    def close(self) -> None:
        """Flush the encoder, copy the source's other streams, move the file into place."""
        if self._out is None:
            raise VideoError("no frame was written")
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        self._out = None
        if not self.part:  # the other streams joined in, straight into place (assemble's own hidden file, synced)
            assemble([self.tmp], self.source.path, self.path)
            self.tmp.unlink()
            return
        with open(self.tmp, "rb") as f:  # on disk before its name says it is finished (a power cut)
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001  (the file is removed anyway)
                pass
            self._out = None
        self.tmp.unlink(missing_ok=True)

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


def _by_time(*sources: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """(packet, target stream) pairs of several demuxers merged by decode time; the flush
    packets (no dts) are left out."""
    import heapq  # noqa: PLC0415

    def timed(source, k):
        for n, (packet, target) in enumerate(source):
            if packet.dts is not None:
                yield float(packet.dts * packet.time_base), k, n, packet, target

    for *_, packet, target in heapq.merge(*(timed(s, k) for k, s in enumerate(sources))):
        yield packet, target


def _format(suffix: str) -> str | None:
    return {".mkv": "matroska", ".mov": "mov", ".mp4": "mp4", ".webm": "webm", ".avi": "avi"}.get(suffix)


def _copied(container: Any) -> list[Any]:
    """The streams of a source clip copied into its output: audio, subtitles, data."""
    video_index = container.streams.video[0].index
    return [s for s in container.streams if s.type in ("audio", "subtitle", "data") and s.index != video_index]


def _add_copy(dst: Any, stream: Any, suffix: str) -> Any:
    """`stream` added to `dst` as a copy; VideoError where the container cannot hold it."""
    import av  # noqa: PLC0415

    try:
        return dst.add_stream_from_template(stream)
    except (av.FFmpegError, ValueError) as exc:
        name = stream.codec_context.name if stream.codec_context else "?"
        raise VideoError(f"its {stream.type} stream ({name}) cannot go in {suffix}: {ffmpeg_reason(exc)}; "
                         f"choose another container with -o") from None


def check_streams(source: Path, out: Path) -> None:
    """VideoError where `out`'s container cannot hold one of the source's copied streams (AAC
    audio in .webm): found before any frame runs, not when the pieces are joined."""
    import io  # noqa: PLC0415

    import av  # noqa: PLC0415

    suffix = out.suffix.lower()
    with open_clip(source) as src, av.open(io.BytesIO(), "w", format=_format(suffix)) as dst:
        for stream in _copied(src):
            _add_copy(dst, stream, suffix)


def assemble(parts: list[Path], source: Path, out: Path) -> None:
    """Write `out` (through a hidden file beside it; `out` may be one of `parts`) from the video
    packets of `parts` in order (each part starting at a keyframe) and the source clip's audio,
    subtitle and data streams remuxed untouched, packet for packet, with its chapters and its
    container metadata. Streams the output container cannot hold are a VideoError naming them.
    The parts are ClipWriter's (no B-frames: each packet decodes at its presentation time)."""
    import av  # noqa: PLC0415

    suffix = out.suffix.lower()
    with replaced_atomically(out, suffix) as tmp, av.open(str(source)) as src, \
            av.open(str(tmp), "w", format=_format(suffix)) as dst:
        others = _copied(src)
        with av.open(str(parts[0])) as first:
            v_out = dst.add_stream_from_template(first.streams.video[0])
        mapping = {s.index: _add_copy(dst, s, suffix) for s in others}
        for key, value in src.metadata.items():
            dst.metadata[key] = value
        if src.chapters():
            dst.set_chapters(src.chapters())
        # the video and the copied streams merged in time order: the muxer interleaves without
        # holding one stream's packets while it waits for the other's
        streams = (((p, v_out) for p in _video_packets(parts)),
                   ((p, mapping[p.stream.index]) for p in (src.demux(*others) if others else ())))
        try:
            for packet, target in _by_time(*streams):
                packet.stream = target
                dst.mux(packet)
        except av.FFmpegError as exc:  # one line, without the hidden file's name
            raise VideoError(f"the video cannot be joined into {suffix} ({ffmpeg_reason(exc)})") from None


def _video_packets(parts: list[Path]) -> Iterator[Any]:
    """The video packets of each part in turn, one part open at a time: each packet a copy that
    owns its bytes (the muxer may still hold a packet when its part is closed: measured, packets
    that pointed into a closed part's buffers came out with other bytes in 3 of 8 runs)."""
    import av  # noqa: PLC0415

    for part in parts:
        with av.open(str(part)) as c:
            for packet in c.demux(c.streams.video[0]):
                if not packet.size or (packet.pts is None and packet.dts is None):
                    continue  # the demuxer's flush packet
                own = av.Packet(bytes(packet))
                # no B-frames (ClipWriter), so packets decode in presentation order: dts = pts (an AVI
                # piece's own dts restart at 0 in each piece, which would run backwards when joined)
                own.pts, own.time_base = packet.pts, packet.time_base
                own.dts = packet.pts if packet.pts is not None else packet.dts
                own.duration, own.is_keyframe = packet.duration, packet.is_keyframe
                yield own
