"""Image-folder data: random crops drawn from a seeded generator, degraded on the fly.

Batches are a pure function of (seed, step, rank), so training resumes exactly without saving
any loader state, each DDP rank draws its own stream, and worker processes can build batches
ahead of the model in any order.

Two kinds of data:
    clean images (data.train)           the task's degradation makes the inputs
    pairs (data.input + data.train)     input and target files matched by relative path
                                        (extension ignored); target = scale x input in size
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from .io.formats import IMAGE_SUFFIXES  # noqa: F401  (re-exported: callers import it from here)



def list_images(folder: str | Path) -> list[Path]:
    """All image files below `folder` (recursively), sorted for reproducibility."""
    root = Path(folder).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_rgb_uint8(path: Path) -> torch.Tensor | None:
    """(3, H, W) uint8 RGB, or None when the file cannot be decoded. Gray is replicated."""
    from .io.images import looks_truncated

    try:
        data = path.read_bytes()
    except OSError:
        return None
    if looks_truncated(data):  # a cut-off PNG/JPEG: OpenCV may decode part of it without complaint
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(arr[:, :, ::-1])).permute(2, 0, 1).contiguous()


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding the pixels, or None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def step_generator(seed: int, step: int, rank: int = 0, stream: int = 0) -> torch.Generator:
    """The generator behind one training step's randomness on one rank.

    stream 0 draws the batch (crops and degradation, possibly in a worker process); stream 1
    what the trainer itself draws (augmentation, penalties).
    """
    return torch.Generator().manual_seed((((seed * 1_000_003 + step) * 1024 + rank) * 4) + stream)


def decodable(paths: list[Path], cache: bool) -> tuple[list[Path], list[torch.Tensor] | None]:
    """The files that decode (each decoded once now, kept when `cache`), with a warning for
    each that does not: a truncated image with a valid header is skipped like a text file
    named .png, never a failure in the middle of training."""
    kept, images = [], []
    for p in paths:
        img = read_rgb_uint8(p)
        if img is None:
            print(f"warning: {p}: not a readable image (damaged or truncated), skipped", file=sys.stderr)
            continue
        kept.append(p)
        if cache:
            images.append(img)
    return kept, images if cache else None


class _Source:
    """Decoded images held in memory (`cache`), or decoded from disk at every draw."""

    def __init__(self, paths: list[Path], cache: bool, images: list[torch.Tensor] | None = None):
        self.paths, self.cache = paths, cache
        self.images = images if images is not None else ([read_rgb_uint8(p) for p in paths] if cache else None)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.images[i] if self.cache else read_rgb_uint8(self.paths[i])
        if img is None:
            raise ValueError(f"{self.paths[i]}: not a readable image")
        return img


def _area_weights(sizes: list[tuple[int, int]]) -> torch.Tensor:
    areas = torch.tensor([w * h for w, h in sizes], dtype=torch.float64)
    return areas / areas.sum()  # large photos are sampled in proportion to their area


def _augment(patch: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    patch = torch.rot90(patch, k, (-2, -1))
    return patch.flip(-1) if flip else patch


class ImageBank:
    """Clean training images; `sample` draws augmented random crops (rotation, flip)."""

    def __init__(self, paths: list[Path], min_size: int = 0, cache: bool = True):
        kept, sizes = [], []
        for p in paths:
            size = image_size(p)
            if size is None:
                print(f"warning: {p}: not a readable image, skipped", file=sys.stderr)
                continue
            if min(size) < min_size:
                continue
            kept.append(p)
            sizes.append(size)
        good, images = decodable(kept, cache)
        usable = set(good)
        sizes = [s for p, s in zip(kept, sizes) if p in usable]
        if not good:
            raise ValueError(f"no usable training images (>= {min_size}px) among {len(paths)} files")
        self.source = _Source(good, cache, images)
        self.weights = _area_weights(sizes)

    def __len__(self) -> int:
        return len(self.weights)

    def sample(self, gen: torch.Generator, batch: int, crop: int) -> torch.Tensor:
        """(B, 3, crop, crop) float in [0, 1]."""
        idx = torch.multinomial(self.weights, batch, replacement=True, generator=gen).tolist()
        out = []
        for i in idx:
            img = self.source[i]
            h, w = img.shape[1:]
            top = int(torch.randint(0, h - crop + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - crop + 1, (1,), generator=gen))
            k, flip = int(torch.randint(0, 4, (1,), generator=gen)), bool(torch.randint(0, 2, (1,), generator=gen))
            out.append(_augment(img[:, top : top + crop, left : left + crop], k, flip))
        return torch.stack(out).float() / 255.0


def match_pairs(inputs: Path, targets: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(input, target) files matched by relative path without extension; and unmatched inputs."""
    by_key = {t.relative_to(targets).with_suffix(""): t for t in list_images(targets)}
    pairs, missing = [], []
    for p in list_images(inputs):
        t = by_key.get(p.relative_to(inputs).with_suffix(""))
        (pairs.append((p, t)) if t is not None else missing.append(p))
    return pairs, missing


class PairBank:
    """Paired training images (degraded input, clean target); crops are aligned, target = scale x input."""

    def __init__(self, pairs: list[tuple[Path, Path]], scale: int = 1, cache: bool = True):
        self.scale = scale
        self.inputs = _Source([p for p, _ in pairs], cache)
        self.targets = _Source([t for _, t in pairs], cache)
        self.weights = _area_weights([image_size(t) or (1, 1) for _, t in pairs])

    def __len__(self) -> int:
        return len(self.weights)

    def sample(self, gen: torch.Generator, batch: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, crop/scale, crop/scale) inputs and (B, 3, crop, crop) targets, float in [0, 1]."""
        s = self.scale
        c = crop // s
        idx = torch.multinomial(self.weights, batch, replacement=True, generator=gen).tolist()
        xs, ys = [], []
        for i in idx:
            x, y = self.inputs[i], self.targets[i]
            h, w = x.shape[1:]
            top = int(torch.randint(0, h - c + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - c + 1, (1,), generator=gen))
            k, flip = int(torch.randint(0, 4, (1,), generator=gen)), bool(torch.randint(0, 2, (1,), generator=gen))
            xs.append(_augment(x[:, top : top + c, left : left + c], k, flip))
            ys.append(_augment(y[:, top * s : (top + c) * s, left * s : (left + c) * s], k, flip))
        return torch.stack(xs).float() / 255.0, torch.stack(ys).float() / 255.0


def split_paths(train: tuple[str, ...], val: str | None, holdout: int, max_images: int = 0
                ) -> tuple[list[Path], list[Path]]:
    """Training and validation file lists: validation is a folder, or the last `holdout` training files."""
    paths: list[Path] = []
    for folder in train:
        paths += list_images(folder)
    val_paths = list_images(val) if val else []
    if not val and holdout:
        paths, val_paths = paths[:-holdout], paths[-holdout:]
    if max_images:
        paths = paths[:max_images]
    return paths, val_paths


def centre_crop(img: torch.Tensor, size: int, multiple: int = 1) -> torch.Tensor:
    """Centre crop (..., H, W) to at most size x size (0 = whole), sides a multiple of `multiple`."""
    h, w = img.shape[-2:]
    th, tw = (min(size, h), min(size, w)) if size else (h, w)
    th, tw = th - th % multiple, tw - tw % multiple
    top, left = (h - th) // 2, (w - tw) // 2
    return img[..., top : top + th, left : left + tw]


def centre_crop_pair(x: torch.Tensor, y: torch.Tensor, size: int, scale: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching centre crops of an input (..., h, w) and its target (..., scale*h, scale*w); `size` in target px."""
    xc = centre_crop(x, size // scale if size else 0)
    h, w = x.shape[-2:]
    ch, cw = xc.shape[-2:]
    top, left = (h - ch) // 2 * scale, (w - cw) // 2 * scale
    return xc, y[..., top : top + ch * scale, left : left + cw * scale]


def load_validation(paths: list[Path], limit: int, size: int, multiple: int = 1) -> list[torch.Tensor]:
    """Up to `limit` clean images (1, 3, h, w) in [0, 1], centre-cropped to `size` (0 = whole)."""
    out = []
    for p in paths[:limit]:
        img = read_rgb_uint8(p)
        if img is not None:
            out.append(centre_crop(img, size, multiple).unsqueeze(0).float() / 255.0)
    return out
