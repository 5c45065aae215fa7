"""What the Python API accepts, checked at the door: images as arrays or tensors, masks, tile
sizes. Each wrong input is one ValueError saying what was given and what is expected, instead
of a torch or OpenCV error from deep inside (or a silently wrong result: a float image in
0-255 or a uint8 tensor read as [0, 1] comes back all white).

    arrays   (H, W) or (H, W, C) or (B, H, W, C), C = 1-4; uint8, uint16, or float in [0, 1]
    tensors  (C, H, W) or (B, C, H, W), C = 1-4; float in [0, 1], uint8 or uint16
    masks    (H, W), (H, W, 1), (1, H, W) or (B, 1, H, W); bool, uint8 (0/255), float in [0, 1];
             numpy or torch -> (B, 1, H, W) float32 tensor
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

MIN_TILE = 32  # smaller tiles only multiply the work: the network pads every tile to its window grid
FLOAT_SLACK = 0.5  # floats a little outside [0, 1] (a resize's overshoot) are fine; 0-255 ones are not


def check_tile(tile: Any) -> int:
    """A tile size: 0 (the whole image at once) or at least MIN_TILE pixels."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)):
        raise ValueError(f"tile must be a whole number of pixels, got {tile!r}")
    if tile != 0 and not MIN_TILE <= tile <= 1_000_000:
        raise ValueError(f"tile must be 0 (whole image) or at least {MIN_TILE} pixels, got {tile}")
    return int(tile)


def _check_float_values(x: np.ndarray | torch.Tensor, what: str) -> None:
    lo, hi = float(x.min()), float(x.max())  # NaN anywhere makes them NaN; x is not empty
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{what} holds NaN or infinite values")
    if lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK:
        hint = " (divide by 255, or pass uint8)" if hi <= 255 else ""
        raise ValueError(f"{what} values span [{lo:.4g}, {hi:.4g}]; float images must be in [0, 1]{hint}")


def _check_channels(c: int, layout: str) -> None:
    if not 1 <= c <= 4:
        raise ValueError(f"expected {layout} with C = 1-4 channels (gray, gray+alpha, RGB, RGBA), got C = {c}")


def image_array(a: Any) -> np.ndarray:
    """An image array as (B, H, W, C), checked (dtype, shape, float range)."""
    a = np.asarray(a)
    if a.dtype == np.bool_ or not (a.dtype in (np.uint8, np.uint16) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"unsupported array dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")
    if a.ndim not in (2, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, C) or (B, H, W, C) image array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"the image array is empty (shape {a.shape})")
    a = a[:, :, None] if a.ndim == 2 else a
    a = a[None] if a.ndim == 3 else a  # (B, H, W, C)
    _check_channels(a.shape[3], "(H, W, C) arrays")
    if np.issubdtype(a.dtype, np.floating):
        _check_float_values(a, "the float image")
    return a


def image_tensor(x: Any) -> torch.Tensor:
    """An image tensor as (B, C, H, W), checked (dtype, shape, float range)."""
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (B, C, H, W) image tensor, got shape {tuple(x.shape)}")
    x = x if x.dim() == 4 else x.unsqueeze(0)
    if x.numel() == 0:
        raise ValueError(f"the image tensor is empty (shape {tuple(x.shape)})")
    _check_channels(x.shape[1], "(C, H, W) tensors")
    if x.is_floating_point():
        _check_float_values(x.detach(), "the float image")
    elif x.dtype not in (torch.uint8, torch.uint16):
        raise ValueError(f"unsupported tensor dtype {x.dtype} (use float in [0, 1], uint8 or uint16)")
    return x


def request_mask(mask: Any, batch: int, height: int, width: int) -> torch.Tensor:
    """A user's mask (numpy or torch; see the module doc) as a (B, 1, H, W) float32 tensor of
    the image's size (one mask for a batch is shared by every image)."""
    m = torch.from_numpy(np.ascontiguousarray(mask)) if isinstance(mask, np.ndarray) else mask
    if not torch.is_tensor(m):
        raise ValueError(f"mask must be a numpy array or a torch tensor, got {type(mask).__name__}")
    if m.dim() == 3 and m.shape[-1] == 1 and m.shape[0] != 1:  # (H, W, 1)
        m = m[..., 0]
    while m.dim() < 4:
        m = m.unsqueeze(0)
    if m.dim() != 4 or m.shape[1] != 1 or tuple(m.shape[-2:]) != (height, width) or m.shape[0] not in (1, batch):
        raise ValueError(f"mask has shape {tuple(mask.shape)}; expected ({height}, {width}) (the image's height "
                         f"and width), or (B, 1, {height}, {width})")
    if m.dtype == torch.bool:
        return m.float()
    if m.dtype == torch.uint8:
        return (m > 127).float()
    if not m.is_floating_point():
        raise ValueError(f"mask dtype {m.dtype} is not supported (use bool, uint8 0/255 or float in [0, 1])")
    if not bool(torch.isfinite(m).all()) or float(m.min()) < 0 or float(m.max()) > 1:
        raise ValueError("mask values must be in [0, 1] (1 = fill)")
    return m.float()
