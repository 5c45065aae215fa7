"""PatchGAN-style ViT discriminator: (condition, candidate) -> one real/fake logit per patch.

    cat(condition, candidate) (B, C, H, W)
      -> conv stem + overlapping patch embedding (stride-2 3x3 convs)  (B, D, H/p, W/p)
      -> conv position encoding (depthwise 3x3, any size)
      -> ViT blocks with L2-distance self-attention (tied query/key, Lipschitz; ViTGAN)
      -> linear head per token -> logits (B, 1, H/p, W/p)

All weights carry improved spectral normalisation when `spectral_norm` is set. `forward`
also returns the block outputs for the feature-matching loss.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import DiscriminatorConfig
from .spectral import spectral


class L2Attention(nn.Module):
    """Multi-head self-attention with logits -||q_i - k_j||^2 / sqrt(d) and tied W_q = W_k."""

    def __init__(self, dim: int, heads: int, sn: bool):
        super().__init__()
        self.heads = heads
        self.qk = spectral(nn.Linear(dim, dim, bias=False), sn)
        self.v = spectral(nn.Linear(dim, dim, bias=False), sn)
        self.proj = spectral(nn.Linear(dim, dim), sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape  # (B, N tokens, C)
        hd = c // self.heads
        q = self.qk(x).view(b, n, self.heads, hd).transpose(1, 2)  # (B, heads, N, hd); k = q
        v = self.v(x).view(b, n, self.heads, hd).transpose(1, 2)
        sq = (q * q).sum(-1, keepdim=True)  # (B, heads, N, 1)
        dist = sq + sq.transpose(-1, -2) - 2 * q @ q.transpose(-1, -2)  # (B, heads, N, N)
        attn = torch.softmax(-dist / math.sqrt(hd), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class DiscBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, sn: bool):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = L2Attention(dim, heads, sn)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(spectral(nn.Linear(dim, hidden), sn), nn.GELU(), spectral(nn.Linear(hidden, dim), sn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        if cfg.patch < 2 or cfg.patch & (cfg.patch - 1):
            raise ValueError(f"discriminator patch must be a power of two >= 2, got {cfg.patch}")
        sn = cfg.spectral_norm
        self.cfg = cfg
        layers: list[nn.Module] = [spectral(nn.Conv2d(cfg.in_channels, cfg.dim // 2, 3, padding=1), sn), nn.LeakyReLU(0.2)]
        c = cfg.dim // 2
        for _ in range(int(math.log2(cfg.patch))):  # overlapping stride-2 patch embedding
            layers += [spectral(nn.Conv2d(c, cfg.dim, 3, stride=2, padding=1), sn), nn.LeakyReLU(0.2)]
            c = cfg.dim
        self.embed = nn.Sequential(*layers)
        self.pos = spectral(nn.Conv2d(cfg.dim, cfg.dim, 3, padding=1, groups=cfg.dim), sn)
        self.blocks = nn.ModuleList(DiscBlock(cfg.dim, cfg.heads, cfg.mlp_ratio, sn) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = spectral(nn.Linear(cfg.dim, 1), sn)

    def forward(self, condition: torch.Tensor, candidate: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """condition (B, C_c, H, W), candidate (B, C_x, H, W) -> logits (B, 1, H/p, W/p), features."""
        x = self.embed(torch.cat([condition, candidate], 1))  # (B, D, h, w)
        x = x + self.pos(x)
        b, d, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, h*w, D)
        feats = []
        for blk in self.blocks:
            t = blk(t)
            feats.append(t)
        logits = self.head(self.norm(t))  # (B, h*w, 1)
        return logits.transpose(1, 2).reshape(b, 1, h, w), feats
