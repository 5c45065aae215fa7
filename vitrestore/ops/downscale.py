"""The downscalers that make the small images users bring: each named one runs the real library
(MATLAB-compatible bicubic, Pillow, OpenCV), so a super-resolution model trained or benchmarked
on them sees what those tools write, not an imitation.

    small = downscale(x, (h, w), "cv2_area")     # x (B, C, H, W) float in [0, 1], not rounded

`Downscale` is the seeded op (sample/apply, as in `degrade.py`) that draws one downscaler per
image; callers quantise afterwards (a small image is a file).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from .resize import imresize

_PIL = {"pil_bicubic": Image.Resampling.BICUBIC, "pil_lanczos": Image.Resampling.LANCZOS,
        "pil_bilinear": Image.Resampling.BILINEAR, "pil_box": Image.Resampling.BOX}
_CV2 = {"cv2_area": cv2.INTER_AREA, "cv2_linear": cv2.INTER_LINEAR, "cv2_cubic": cv2.INTER_CUBIC}

# name -> what it is (the Pillow filters and MATLAB's antialias when shrinking; OpenCV's linear
# and cubic sample without antialiasing, as OpenCV and many scripts do)
DOWNSCALERS: dict[str, str] = {
    "matlab_bicubic": "MATLAB imresize bicubic, antialiased (the papers' protocol)",
    "pil_bicubic": "Pillow BICUBIC (antialiased)",
    "pil_lanczos": "Pillow LANCZOS (antialiased)",
    "pil_bilinear": "Pillow BILINEAR (antialiased)",
    "pil_box": "Pillow BOX (pixel averaging)",
    "cv2_area": "OpenCV INTER_AREA (pixel averaging: thumbnails, browsers)",
    "cv2_linear": "OpenCV INTER_LINEAR (no antialiasing)",
    "cv2_cubic": "OpenCV INTER_CUBIC (no antialiasing)",
}


def _pil(img: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray:
    """(H, W, C) float32 -> (h, w, C), channel by channel in Pillow's float mode."""
    return np.stack([np.asarray(Image.fromarray(img[:, :, c], mode="F").resize((size[1], size[0]), _PIL[name]))
                     for c in range(img.shape[2])], 2)


def downscale(x: torch.Tensor, size: tuple[int, int], name: str) -> torch.Tensor:
    """(B, C, H, W) float -> (B, C, h, w) float (unclipped, unrounded) by the named downscaler."""
    if name not in DOWNSCALERS:
        raise ValueError(f"unknown downscaler {name!r} (known: {', '.join(DOWNSCALERS)})")
    if name == "matlab_bicubic":
        return imresize(x.double(), size=size).to(x.dtype)
    out = []
    for img in x.detach().float().cpu().permute(0, 2, 3, 1).numpy():  # (H, W, C)
        img = np.ascontiguousarray(img)
        if name in _PIL:
            small = _pil(img, size, name)
        else:
            small = cv2.resize(img, (size[1], size[0]), interpolation=_CV2[name])
            small = small.reshape(size[0], size[1], -1)
        out.append(torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1))
    return torch.stack(out).to(x)


@dataclass(frozen=True)
class Downscale:
    """Shrink by `scale` with a downscaler drawn per image from `names`."""

    scale: int = 4
    names: tuple[str, ...] = tuple(DOWNSCALERS)

    def __post_init__(self):
        unknown = [n for n in self.names if n not in DOWNSCALERS]
        if unknown or not self.names:
            raise ValueError(f"unknown downscaler(s) {unknown or '(none given)'} (known: {', '.join(DOWNSCALERS)})")

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        return {"which": torch.randint(0, len(self.names), (shape[0],), generator=gen)}

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        size = (x.shape[-2] // self.scale, x.shape[-1] // self.scale)
        which = p["which"].tolist()
        out = torch.empty(*x.shape[:2], *size, dtype=x.dtype, device=x.device)
        for k in sorted(set(which)):
            idx = torch.tensor([i for i, w in enumerate(which) if w == k], device=x.device)
            out[idx] = downscale(x[idx], size, self.names[k])
        return out
