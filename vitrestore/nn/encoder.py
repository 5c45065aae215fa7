"""Image -> tokens: a convolutional stem followed by an overlapping patch embedding.

Position information comes from the convolutions themselves (zero padding leaks absolute
position, the depthwise conv in every block's MLP gives relative position) and from the
windowed relative-position bias in attention, so the encoder works at any input size.
"""
from __future__ import annotations

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """(B, C_in, H, W) -> stem features (B, C_stem, H, W) and tokens (B, C_tok, H/2, W/2).

    The patch embedding is a stride-2 3x3 convolution: neighbouring patches overlap by one
    pixel on each side, which avoids the block artefacts of non-overlapping ViT patches.
    """

    def __init__(self, in_channels: int, stem_channels: int, token_channels: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(stem_channels, stem_channels, 3, padding=1),
        )
        self.patch_embed = nn.Conv2d(stem_channels, token_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stem = self.stem(x)  # (B, C_stem, H, W)
        tokens = self.patch_embed(stem)  # (B, C_tok, H/2, W/2)
        return stem, tokens
