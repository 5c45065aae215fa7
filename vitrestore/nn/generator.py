"""Conditional U-shaped ViT generator: the "uvit" backbone (vitrestore/backbones.py).

    input (B, C_in, H, W) + condition (B, C_cond, H, W)
      -> pad to a multiple of s * 2^(levels-1) * window (reflect), crop back at the end
      -> ImageEncoder: stem (B, C_s, H, W), tokens (B, d0, H/s, W/s)   (s = patch_stride: 1, 2 or 4;
         in fp32 even under autocast)
      -> encoder stages at 1/s, 1/2s, ..., bottleneck (shifted-window attention)
      -> decoder stages back up to 1/s with skip connections (token_upsample: pixel shuffle or bilinear)
      -> head: tokens -> pixels (pixel shuffle or bilinear xs when s > 1, plus stem skip) -> x upscale (pixel shuffle)
      -> + global residual (the input, bilinearly resized when upscale > 1)

Attention only ever runs inside (window x window) token windows (at 1/s resolution and below,
s = patch_stride, so at full resolution when s is 1), so cost and memory grow linearly with the
pixel count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import GeneratorConfig
from .blocks import UPSAMPLE_MODES, Downsample, LayerNorm2d, Stage, Upsample
from .encoder import ImageEncoder


# the modules that work at the input's full resolution (stem, first encoder and last decoder
# stage, head): what a few minutes of `--adapt` fine-tune, leaving the coarse levels as trained
FULL_RESOLUTION = ("encoder.", "enc_stages.0.", "dec_stages.0.", "fuses.0.", "norm.", "to_pixels.", "head.")


def is_full_resolution(name: str) -> bool:
    """Whether generator parameter `name` belongs to the full-resolution path."""
    return name.startswith(FULL_RESOLUTION)


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, cond_channels: int = 0, scale: int = 1):
        """`cond_channels`: the condition channels its task feeds; `scale`: output / input size."""
        super().__init__()
        levels = len(cfg.dims)
        if not (len(cfg.heads) == len(cfg.enc_depths) == levels and len(cfg.dec_depths) == levels - 1):
            raise ValueError("generator: dims, heads, enc_depths need one entry per level, dec_depths one fewer")
        self.cfg, self.cond_channels, self.scale = cfg, cond_channels, scale
        if cfg.patch_stride not in (1, 2, 4):
            raise ValueError(f"generator: patch_stride must be 1, 2 or 4, got {cfg.patch_stride}")
        if cfg.token_upsample not in UPSAMPLE_MODES:  # checked here too: the error names the config key
            raise ValueError(f"generator: token_upsample must be one of {UPSAMPLE_MODES}, got {cfg.token_upsample!r}")
        self.pad_multiple = cfg.patch_stride * 2 ** (levels - 1) * cfg.window
        self.encoder = ImageEncoder(cfg.in_channels + cond_channels, cfg.stem_channels, cfg.dims[0],
                                    cfg.patch_stride)
        self.enc_stages = nn.ModuleList(
            Stage(d, n, h, cfg.window, cfg.mlp_ratio) for d, n, h in zip(cfg.dims, cfg.enc_depths, cfg.heads)
        )
        self.downs = nn.ModuleList(Downsample(cfg.dims[i], cfg.dims[i + 1]) for i in range(levels - 1))
        self.ups = nn.ModuleList(Upsample(cfg.dims[i + 1], cfg.dims[i], 2, cfg.token_upsample) for i in range(levels - 1))
        self.fuses = nn.ModuleList(nn.Conv2d(2 * cfg.dims[i], cfg.dims[i], 1) for i in range(levels - 1))
        self.dec_stages = nn.ModuleList(
            Stage(cfg.dims[i], cfg.dec_depths[i], cfg.heads[i], cfg.window, cfg.mlp_ratio) for i in range(levels - 1)
        )
        self.norm = LayerNorm2d(cfg.dims[0])
        # tokens -> pixel features at the input resolution
        self.to_pixels = (Upsample(cfg.dims[0], cfg.stem_channels, cfg.patch_stride, cfg.token_upsample)
                          if cfg.patch_stride > 1 else nn.Conv2d(cfg.dims[0], cfg.stem_channels, 3, padding=1))
        self.head = nn.Sequential(
            nn.Conv2d(2 * cfg.stem_channels, cfg.stem_channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(cfg.stem_channels, cfg.out_channels * scale**2, 3, padding=1),
            nn.PixelShuffle(scale),
        )
        nn.init.zeros_(self.head[-2].weight)
        nn.init.zeros_(self.head[-2].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C_in, H, W) in [0, 1]; cond: (B, C_cond, H, W) or None -> (B, C_out, sH, sW)."""
        cfg = self.cfg
        b, _, h, w = x.shape
        if cond is None and self.cond_channels:
            raise ValueError(f"generator expects {self.cond_channels} condition channels, got none")
        inp = torch.cat([x, cond], 1) if self.cond_channels else x
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            inp = F.pad(inp, (0, pw, 0, ph), mode=mode)
        stem, t = self.encoder(inp)  # (B, C_s, H', W'), (B, d0, H'/s, W'/s)
        skips = []
        for i, stage in enumerate(self.enc_stages):
            t = stage(t)
            if i < len(self.downs):
                skips.append(t)
                t = self.downs[i](t)  # (B, d_{i+1}, H'/2^(i+2), W'/2^(i+2))
        for i in reversed(range(len(self.ups))):
            t = self.ups[i](t)  # (B, d_i, ...) one level up
            t = self.dec_stages[i](self.fuses[i](torch.cat([t, skips[i]], 1)))
        pix = self.to_pixels(self.norm(t))  # (B, C_s, H', W')
        out = self.head(torch.cat([pix, stem], 1))  # (B, C_out, sH', sW')
        s = self.scale
        out = out[:, :, : h * s, : w * s]
        if cfg.residual:
            base = x[:, : cfg.out_channels]
            if s > 1:
                base = F.interpolate(base, scale_factor=s, mode="bilinear", align_corners=False)
            out = out + base
        return out
