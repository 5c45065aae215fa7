"""Image -> tokens: a convolutional stem followed by an overlapping patch embedding.

Position information comes from the convolutions themselves (zero padding leaks absolute
position, the depthwise conv in every block's MLP gives relative position) and from the
windowed relative-position bias in attention, so the encoder works at any input size.
"""
from __future__ import annotations

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """(B, C_in, H, W) -> stem features (B, C_stem, H, W) and tokens (B, C_tok, H/s, W/s).

    The patch embedding is a stride-s convolution (s = 2 by default, 3x3; s = 4 uses 7x7):
    neighbouring patches overlap, which avoids the block artefacts of non-overlapping ViT
    patches. s = 1 keeps one token per pixel (super-resolution inputs are small and every pixel
    counts); s = 4 is for tasks that change texture rather than pixel detail (style transfer).
    """

    def __init__(self, in_channels: int, stem_channels: int, token_channels: int, stride: int = 2):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(stem_channels, stem_channels, 3, padding=1),
        )
        k = 3 if stride <= 2 else 2 * stride - 1
        self.patch_embed = nn.Conv2d(stem_channels, token_channels, k, stride=stride, padding=k // 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = x.device.type
        if not torch.is_autocast_enabled(device):
            stem = self.stem(x)  # (B, C_stem, H, W)
            return stem, self.patch_embed(stem)  # (B, C_tok, H/stride, W/stride)
        # under autocast the encoder still runs in fp32: in bf16 the input pixels themselves would
        # be rounded (steps of one 8-bit level above 0.5), which costs PSNR on every image. The
        # stem features go on in the autocast dtype, the dtype of the head conv that reads them.
        with torch.autocast(device, enabled=False):
            stem = self.stem(x.float())
            tokens = self.patch_embed(stem)
        return stem.to(torch.get_autocast_dtype(device)), tokens
