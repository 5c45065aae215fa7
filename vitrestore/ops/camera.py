"""Processed-camera noise: the noise of a photo as a camera writes it, drawn where the sensor
makes it and then carried through the camera's processing (the "unprocessing" idea of Brooks et
al., CVPR 2019, here as one seeded op with the sample/apply contract of `degrade.py`).

    sRGB image --(inverse tone curve, inverse gamma, inverse colour matrix, inverse white
    balance, RGGB mosaic)--> linear raw (B, 1, H, W)
    raw + sqrt(shot * raw + read) * n                       signal-dependent sensor noise
    --(white balance, bilinear demosaic, colour matrix, gamma, tone curve)--> sRGB

The op returns the clean image plus the *noise* of that round trip,
    y = x + process(raw + noise) - process(raw),
so the clean image stays the target (the demosaic's blur of the clean signal is not taught as
something to undo), while the noise has what a camera gives it: it grows with the signal, is
correlated between neighbours (demosaicing) and between channels (colour matrix), and is
stretched in the shadows by the gamma and tone curves. Optionally it is made at a smaller size
and enlarged (a camera or a user that resized the photo: coarser grain).

Images (B, 3, H, W) in [0, 1]; odd sizes are handled (the mosaic is made on a padded copy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..fields import bounded
from .degrade import _uniform, select

# sRGB (linear) -> XYZ (D65)
_RGB2XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
# XYZ -> camera colour matrices of four real cameras (the DNG "ColorMatrix" of each; public
# calibration data). A random convex mix of them is one plausible camera.
_XYZ2CAMS = torch.tensor([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.5181]],
], dtype=torch.float64)

# Bilinear demosaicing kernels (normalised convolution: divided by the same kernel over the mask)
_K_GREEN = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 4
_K_RB = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4


def tone_curve(x: torch.Tensor) -> torch.Tensor:
    """The global tone curve of a processed photo (smoothstep)."""
    x = x.clamp(0, 1)
    return 3 * x**2 - 2 * x**3


def inverse_tone_curve(y: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0, 1)
    return 0.5 - torch.sin(torch.asin(1 - 2 * y) / 3)


def bayer_masks(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(3, H, W) 0/1 masks of an RGGB mosaic: R at (even, even), G at (even, odd) and (odd,
    even), B at (odd, odd)."""
    ys = torch.arange(h, device=device).view(h, 1) % 2
    xs = torch.arange(w, device=device).view(1, w) % 2
    r = (ys == 0) & (xs == 0)
    b = (ys == 1) & (xs == 1)
    return torch.stack([r, ~(r | b), b]).to(dtype)


def mosaic(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) RGGB raw (each pixel keeps the one colour its filter passes)."""
    m = bayer_masks(*rgb.shape[-2:], device=rgb.device, dtype=rgb.dtype)
    return (rgb * m).sum(1, keepdim=True)


def demosaic(raw: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) RGGB raw -> (B, 3, H, W) by bilinear interpolation of each colour's samples
    (normalised convolution, so borders need no padding rule)."""
    m = bayer_masks(*raw.shape[-2:], device=raw.device, dtype=raw.dtype)  # (3, H, W)
    sparse = raw * m  # (B, 3, H, W)
    k = torch.stack([_K_RB, _K_GREEN, _K_RB]).unsqueeze(1).to(raw)  # (3, 1, 3, 3)
    num = F.conv2d(sparse, k, padding=1, groups=3)
    den = F.conv2d(m.unsqueeze(0), k, padding=1, groups=3)
    return num / den.clamp(min=1e-6)


@dataclass(frozen=True)
class CameraNoise:
    """Sensor noise carried through a random camera's processing (see the module docstring).

    Shot noise (variance per unit of linear signal) is log-uniform in [shot_min, shot_max]; read
    noise variance follows it by the log-linear fit cameras show (log read = 2.18 log shot + 1.2,
    jittered by N(0, 0.26)). `shrink_prob` of the images get their noise made at a scale drawn
    from [shrink_min, 1] and enlarged (coarser, more correlated grain)."""

    shot_min: float = bounded(1e-4, 1e-6, 1)
    shot_max: float = bounded(1.2e-2, 1e-6, 1)
    read_jitter: float = bounded(0.26, 0, 10)
    shrink_prob: float = bounded(0.3, 0, 1)
    shrink_min: float = bounded(0.4, 0.05, 1)

    def sample(self, gen: torch.Generator, shape: tuple[int, ...]) -> dict:
        b = shape[0]
        log_shot = _uniform(gen, b, math.log(self.shot_min), math.log(self.shot_max))
        log_read = 2.18 * log_shot + 1.2 + self.read_jitter * torch.randn(b, generator=gen)
        weights = torch.rand(b, len(_XYZ2CAMS), generator=gen, dtype=torch.float64)
        weights = weights / weights.sum(1, keepdim=True)
        gains = torch.stack([_uniform(gen, b, 1.9, 2.4), torch.ones(b), _uniform(gen, b, 1.5, 1.9)], 1)  # (B, 3) R G B
        brightness = 1 / (0.8 + 0.1 * torch.randn(b, generator=gen)).clamp(0.5, 1.2)  # the camera's exposure gain
        shrink = torch.where(select(gen, b, self.shrink_prob), _uniform(gen, b, self.shrink_min, 1.0), torch.ones(b))
        scale = float(shrink.min())  # one noise size per batch (one field shape)
        h, w = shape[-2], shape[-1]
        nh, nw = max(2, round(h * scale)), max(2, round(w * scale))
        return {"shot": log_shot.exp(), "read": log_read.exp(), "cam_weights": weights, "wb": gains,
                "brightness": brightness, "noise": torch.randn(b, 1, nh + nh % 2, nw + nw % 2, generator=gen)}

    @staticmethod
    def colour_matrix(weights: torch.Tensor) -> torch.Tensor:
        """(B, 3, 3) sRGB-linear -> camera matrices (rows sum to 1) from (B, N) mixing weights."""
        xyz2cam = torch.einsum("bn,nij->bij", weights, _XYZ2CAMS)
        rgb2cam = xyz2cam @ _RGB2XYZ
        return rgb2cam / rgb2cam.sum(2, keepdim=True)

    def apply(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        b, c, h, w = x.shape
        if c != 3:
            raise ValueError(f"camera noise needs RGB images, got {c} channels")
        rgb2cam = self.colour_matrix(p["cam_weights"])  # (B, 3, 3) float64
        cam2rgb = torch.linalg.inv(rgb2cam).to(x)
        rgb2cam = rgb2cam.to(x)
        wb = p["wb"].to(x).view(b, 3, 1, 1)
        gain = p["brightness"].to(x).view(b, 1, 1, 1)
        noise = p["noise"].to(x)
        nh, nw = noise.shape[-2:]
        small = (nh, nw) != (h + h % 2, w + w % 2)
        # unprocess: sRGB -> linear camera raw
        src = F.interpolate(x, size=(nh, nw), mode="area") if small else x
        src = F.pad(src, (0, nw - src.shape[-1], 0, nh - src.shape[-2]), mode="replicate")  # even size
        lin = inverse_tone_curve(src).clamp(min=1e-8) ** 2.2 / gain
        cam = torch.einsum("bij,bjhw->bihw", rgb2cam, lin) / wb
        raw = mosaic(cam.clamp(0, 1))  # (B, 1, h, w)
        # sensor noise on the raw signal
        var = p["shot"].to(x).view(b, 1, 1, 1) * raw + p["read"].to(x).view(b, 1, 1, 1)
        noisy_raw = raw + var.sqrt() * noise
        # process both the clean and the noisy raw back to sRGB; the difference is the noise
        both = self._process(torch.cat([raw, noisy_raw]), cam2rgb.repeat(2, 1, 1), wb.repeat(2, 1, 1, 1),
                             gain.repeat(2, 1, 1, 1))
        residual = both[b:] - both[:b]  # (B, 3, h, w)
        if small:
            residual = F.interpolate(residual, size=(h + h % 2, w + w % 2), mode="bicubic", align_corners=False)
        return x + residual[..., :h, :w]

    @staticmethod
    def _process(raw: torch.Tensor, cam2rgb: torch.Tensor, wb: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) raw -> (B, 3, H, W) sRGB: white balance, demosaic, colour matrix, exposure,
        gamma, tone curve. Highlights clip as a camera's do."""
        cam = demosaic(raw) * wb
        lin = torch.einsum("bij,bjhw->bihw", cam2rgb, cam) * gain
        return tone_curve(lin.clamp(1e-8, 1) ** (1 / 2.2))
