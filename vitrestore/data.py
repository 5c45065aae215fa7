"""Image-folder data: clean images held in memory, random crops drawn from a seeded generator.

Batches are a pure function of (seed, step), so training resumes exactly without saving any
loader state, and each DDP rank draws its own stream.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


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
    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(arr[:, :, ::-1])).permute(2, 0, 1).contiguous()


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator that drives everything random in one training step."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)


class ImageBank:
    """Clean training images in memory; `sample` draws augmented random crops."""

    def __init__(self, paths: list[Path], min_size: int = 0):
        self.images: list[torch.Tensor] = []
        for p in paths:
            img = read_rgb_uint8(p)
            if img is None:
                print(f"warning: {p}: not a readable image, skipped", file=sys.stderr)
                continue
            if min(img.shape[1:]) < min_size:
                continue
            self.images.append(img)
        if not self.images:
            raise ValueError(f"no usable training images (>= {min_size}px) among {len(paths)} files")
        sizes = torch.tensor([img.shape[1] * img.shape[2] for img in self.images], dtype=torch.float64)
        self.weights = sizes / sizes.sum()  # large photos are sampled in proportion to their area

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, gen: torch.Generator, batch: int, crop: int) -> torch.Tensor:
        """(B, 3, crop, crop) float in [0, 1]: random image, position, rotation and flip."""
        idx = torch.multinomial(self.weights, batch, replacement=True, generator=gen).tolist()
        out = []
        for i in idx:
            img = self.images[i]
            h, w = img.shape[1:]
            top = int(torch.randint(0, h - crop + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - crop + 1, (1,), generator=gen))
            patch = img[:, top : top + crop, left : left + crop]
            k = int(torch.randint(0, 4, (1,), generator=gen))
            patch = torch.rot90(patch, k, (1, 2))
            if bool(torch.randint(0, 2, (1,), generator=gen)):
                patch = patch.flip(2)
            out.append(patch)
        return torch.stack(out).float() / 255.0


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


def load_validation(paths: list[Path], limit: int, size: int) -> list[torch.Tensor]:
    """Up to `limit` clean images (1, 3, h, w) in [0, 1], centre-cropped to `size` (0 = whole)."""
    out = []
    for p in paths[:limit]:
        img = read_rgb_uint8(p)
        if img is None:
            continue
        if size:
            h, w = img.shape[1:]
            s = min(size, h, w)
            top, left = (h - s) // 2, (w - s) // 2
            img = img[:, top : top + s, left : left + s]
        out.append(img.unsqueeze(0).float() / 255.0)
    return out
