"""Animated images in and out (issue 33): GIF, APNG (.png / .apng) and animated WebP keep their
frame count, each frame's duration, the loop count and transparency.

    anim = read_animation(path)            # Animation: frames (H, W, 3|4) uint8, durations ms, loop
    write_animation(out, anim, frames)     # the same timing and loop, through a hidden file

Frames are whole images (a GIF's or APNG's partial frames composed onto what came before, as a
viewer shows them). An animation is held in memory: animated images are small (a clip is what
streams, vitrestore/io/video.py). A still PNG or WebP is no animation (the image path takes it);
a GIF is one even with a single frame (vitrestore writes no still GIF).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import replaced_atomically

ANIMATED_SUFFIXES = (".gif", ".apng", ".png", ".webp")
FORMAT = {".gif": "GIF", ".apng": "PNG", ".png": "PNG", ".webp": "WEBP"}


class AnimationError(ValueError):
    """An animated image that cannot be read or written, in one line."""


@dataclass
class Animation:
    frames: list[np.ndarray]  # (H, W, 3) RGB or (H, W, 4) RGBA uint8, composed
    durations: list[int]  # milliseconds, one a frame
    loop: int | None  # 0 = for ever, N = N times more; None: play once (no loop entry)
    alpha: bool


def is_animation(path: Path) -> bool:
    """Whether `path` is an animated image this module reads (a GIF always; a PNG or WebP with
    more than one frame). Unreadable files are no animation: the image path reports them."""
    suffix = path.suffix.lower()
    if suffix not in ANIMATED_SUFFIXES:
        return False
    if suffix == ".gif":
        return True
    from PIL import Image  # noqa: PLC0415

    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def read_animation(path: Path, max_pixels: int | None = None) -> Animation:
    from PIL import Image, ImageSequence  # noqa: PLC0415

    try:
        with Image.open(path) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise AnimationError(f"its frames are {im.width}x{im.height}, over --max-megapixels "
                                     f"{max_pixels / 1e6:g}")
            loop = im.info.get("loop")
            alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            frames, durations = [], []
            for frame in ImageSequence.Iterator(im):
                rgba = frame.convert("RGBA")
                alpha = alpha or rgba.getextrema()[3][0] < 255
                frames.append(np.asarray(rgba))
                durations.append(int(frame.info.get("duration", im.info.get("duration", 100)) or 0))
    except AnimationError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError) as exc:
        raise AnimationError(f"not a readable animation ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if not frames:
        raise AnimationError("the animation has no frames")
    if not alpha:
        frames = [f[:, :, :3].copy() for f in frames]
    return Animation(frames, durations, loop, alpha)


def write_animation(path: Path, source: Animation, frames: list[np.ndarray]) -> None:
    """`frames` (the processed ones, one for each of `source`'s) with its durations and loop,
    written atomically in the format the suffix names."""
    from PIL import Image  # noqa: PLC0415

    suffix = path.suffix.lower()
    if suffix not in FORMAT:
        raise AnimationError(f"{path.name}: not an animated format vitrestore writes ({', '.join(ANIMATED_SUFFIXES)})")
    mode = "RGBA" if source.alpha else "RGB"
    images = [Image.fromarray(np.ascontiguousarray(f[:, :, :4] if source.alpha else f[:, :, :3]), mode)
              for f in frames]
    options: dict = {"save_all": True, "append_images": images[1:], "duration": list(source.durations)}
    if source.loop is not None:
        options["loop"] = source.loop
    if suffix == ".gif":
        options["disposal"] = 2 if source.alpha else 1  # transparent frames must not show the one before
        options["optimize"] = False
    elif suffix == ".webp":
        options["lossless"] = True
    else:
        options["default_image"] = False
    with replaced_atomically(path, suffix) as tmp:
        images[0].save(tmp, format=FORMAT[suffix], **options)
