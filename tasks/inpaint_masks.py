"""The user's masks for `inpaint`: what a mask file, a mask folder or a key colour means, and
which mask belongs to which image. Used by the CLI (and the studio for uploaded masks).

    masks = UserMasks(inputs, mask_path=Path("masks/"), dilate=2)   # ValueError: one line, for the user
    hole = masks.hole_for(image)    # (H, W) bool, 1 = fill; ValueError names the file and the problem

A mask folder is matched by the image's path relative to its input folder (a mask tree mirroring
the image tree), else by file name without extension.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vitrestore.data import list_images
from vitrestore.io.images import ImageReadError, LoadedImage, read_image


class UserMasks:
    """Exactly one of `mask_path` (a mask image, or a folder of them) and `color` (R,G,B or
    #rrggbb: every pixel of that colour, within `tolerance`, is the hole); the hole grown by
    `dilate` px. `inputs` are the paths the user gave (folders among them anchor relative names)."""

    def __init__(self, inputs: list[str | Path], mask_path: Path | None = None, color: str | None = None,
                 tolerance: int = 0, dilate: int = 0):
        if (mask_path is None) == (color is None):
            raise ValueError("give exactly one of --mask PATH or --mask-color R,G,B")
        self.mask_path, self.color, self.tolerance, self.dilate = mask_path, color, tolerance, dilate
        self.key = parse_color(color) if color is not None else None
        if mask_path is not None and not mask_path.exists():
            raise ValueError(f"{mask_path}: mask not found")
        self.by_stem: dict[str, list[Path]] = {}
        self.by_rel: dict[Path, list[Path]] = {}  # a mask tree mirroring the image tree: a/x.png -> masks/a/x.*
        if self.is_folder:
            for m in list_images(mask_path):
                self.by_stem.setdefault(m.stem, []).append(m)
                self.by_rel.setdefault(m.relative_to(mask_path).with_suffix(""), []).append(m)
        self.folders = [Path(p).expanduser() for p in inputs if Path(p).expanduser().is_dir()]

    @property
    def is_folder(self) -> bool:
        return self.mask_path is not None and self.mask_path.is_dir()

    def _relative(self, path: Path) -> Path:
        """The image's path relative to the input folder it came from (its name for a file input)."""
        for folder in self.folders:
            try:
                return path.relative_to(folder).with_suffix("")
            except ValueError:
                continue
        return Path(path.stem)

    def _candidates(self, image: Path) -> list[Path]:
        """The mask folder's files for the image: <stem>.* (or <stem>_mask.*, as repair's
        --mask-out names them) matched by relative path, else by name; none where it has none."""
        rel = self._relative(image)
        return (self.by_rel.get(rel) or self.by_rel.get(rel.with_name(rel.name + "_mask"))
                or self.by_stem.get(image.stem) or self.by_stem.get(image.stem + "_mask", []))

    def _mask_file(self, image: Path) -> Path:
        """The image's mask file (the mask, or its one candidate in a mask folder); ValueError
        where a folder has none (or several)."""
        if not self.is_folder:
            return self.mask_path
        found = self._candidates(image)
        if not found:
            raise ValueError(f"no mask named {image.stem}.* in {self.mask_path}")
        if len(found) > 1:
            raise ValueError(f"several masks named {image.stem}.* in {self.mask_path}: "
                             + ", ".join(str(f) for f in found) + " (a mask tree mirroring the "
                             "image folders is matched by relative path)")
        return found[0]

    def hole_for(self, img: LoadedImage) -> np.ndarray:
        """(H, W) bool hole of a loaded image: 1 = fill. ValueError when there is nothing to fill,
        nothing known to fill from, or no usable mask."""
        hole, what, empty = self._marked(img)
        return fillable(hole, empty, f"{what} covers the whole image: no known pixel to fill the hole from")

    def marked_for(self, img: LoadedImage, missing_ok: bool = False) -> np.ndarray:
        """(H, W) bool: the pixels the mask marks, none or all of them alike (repair adds them to
        what it finds); `missing_ok`: a mask folder without the image's mask marks none. ValueError
        where there is no usable mask."""
        if missing_ok and self.is_folder and not self._candidates(img.path):
            return np.zeros(img.pixels.shape[:2], bool)
        return self._marked(img)[0]

    def _marked(self, img: LoadedImage) -> tuple[np.ndarray, str, str]:
        """(the marked pixels grown by `dilate`, what marked them, the message were none marked)."""
        h, w = img.pixels.shape[:2]
        if self.key is not None:
            hole = color_key_mask(img.pixels, self.key, self.tolerance)
            what, empty = f"--mask-color {self.color}", f"no pixel has colour {self.color}"
        else:
            path = self._mask_file(img.path)
            try:
                m = read_image(path, min_side=1)
            except ImageReadError as exc:
                raise ValueError(f"mask {path}: {exc}") from None
            if m.pixels.shape[:2] != (h, w):
                raise ValueError(f"mask {path} is {m.pixels.shape[1]}x{m.pixels.shape[0]} but the image is {w}x{h}")
            hole = mask_from_pixels(m.pixels)
            what, empty = f"mask {path}", f"mask {path} is empty (no white or opaque pixel: nothing to fill)"
        return dilate(hole, self.dilate), what, empty


def fillable(hole: np.ndarray, empty: str, full: str) -> np.ndarray:
    """The hole, when there is something to fill and something known to fill it from; else
    ValueError with the message `empty` (no hole pixel) or `full` (no known pixel)."""
    if not hole.any():
        raise ValueError(empty)
    if hole.all():
        raise ValueError(full)
    return hole


def mask_from_pixels(pixels: np.ndarray) -> np.ndarray:
    """(H, W) bool hole mask from a mask image (H, W, C), 8 or 16 bit: 1 = fill.

    With an alpha channel that has transparent (alpha < 50%) pixels, the opaque (alpha >= 50%)
    pixels are the hole; otherwise (no alpha, or alpha that is opaque everywhere, even if not at
    full 100%) the bright (luminance >= 50%) pixels are. Soft masks are thresholded at 50%.
    """
    peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
    a = pixels.astype(np.float32) / peak
    c = a.shape[2]
    if c in (2, 4) and (a[:, :, -1] < 0.5).any():
        return a[:, :, -1] >= 0.5
    color = a[:, :, :3] if c >= 3 else a[:, :, :1]
    luma = color @ np.array([0.299, 0.587, 0.114], np.float32) if color.shape[2] == 3 else color[:, :, 0]
    return luma >= 0.5


def parse_color(text: str) -> tuple[int, int, int]:
    """'255,0,255' or '#ff00ff' -> (R, G, B)."""
    t = text.strip()
    try:
        if t.startswith("#") and len(t) == 7:
            return tuple(int(t[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        parts = tuple(int(v) for v in t.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(0 <= v <= 255 for v in parts):
        raise ValueError(f"--mask-color must be R,G,B (0-255) or #rrggbb, got {text!r}")
    return parts  # type: ignore[return-value]


def color_key_mask(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 0) -> np.ndarray:
    """(H, W) bool: pixels of the image within `tolerance` (0-255 scale) of the key colour."""
    a = pixels[:, :, :3] if pixels.shape[2] >= 3 else np.repeat(pixels[:, :, :1], 3, 2)
    a = a.astype(np.int32) // (257 if pixels.dtype == np.uint16 else 1)
    return (np.abs(a - np.array(rgb, np.int32)) <= tolerance).all(2)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the hole by `pixels` (a disk), e.g. to cover a halo around a scratch or an object."""
    if pixels <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)
