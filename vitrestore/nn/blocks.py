"""Transformer blocks for images: shifted-window attention, a conv MLP, down/up sampling.

A Stage takes and gives channels-first feature maps (B, C, H, W); inside it the tokens stay
channels-last (B, H, W, C), the layout of LayerNorm, attention and the MLP's matrix products, so
the layout changes twice per stage rather than four times per block. Attention works on windows
of (window x window) tokens, so its cost grows linearly with the pixel count.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window * window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_merge(windows: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def _shifted_window_mask(h: int, w: int, window: int, shift: int, device,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive mask (nW, window^2, window^2) that stops attention across the wrap-around seam."""
    region = torch.zeros(1, h, w, 1, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            region[:, hs, ws, :] = label
            label += 1
    ids = window_partition(region, window).squeeze(-1)  # (nW, window^2)
    same = ids.unsqueeze(1) == ids.unsqueeze(2)
    # a large finite negative, not -inf: softmax gives exactly the same zeros in fp32 (and in
    # fp16, where -1e4 is representable), and PyTorch's attention keeps its fused path
    return torch.zeros(same.shape, device=device, dtype=dtype).masked_fill(~same, -1e4)


_cached_mask = functools.lru_cache(maxsize=32)(_shifted_window_mask)
CACHE_MASK_BYTES = 32 << 20  # a 512 px tile's largest mask is 16 MB; a whole 12 MP photo's 0.8 GB is not kept


def shifted_window_mask(h: int, w: int, window: int, shift: int, like: torch.Tensor) -> torch.Tensor:
    """_shifted_window_mask on `like`'s device, in the dtype attention will compute in there (the
    autocast dtype, else `like`'s), cached per size while it is small (read-only); made in the
    graph while tracing for export, where the sizes are symbolic."""
    device = like.device
    dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else like.dtype
    if torch.jit.is_tracing() or (h // window) * (w // window) * window**4 * 4 > CACHE_MASK_BYTES:
        return _shifted_window_mask(h, w, window, shift, device, dtype)
    with torch.inference_mode(False):  # a plain tensor, whatever mode later callers run in
        return _cached_mask(h, w, window, shift, str(device), dtype)


@functools.lru_cache(maxsize=8)
def relative_index(window: int, device: torch.device) -> torch.Tensor:
    """(N, N) index of each query/key pair's offset into a (2 * window - 1)^2 relative-position
    table, N = window^2: one per window size and device, shared by every block (read-only).
    Made on first use, not when a block is built, so a block on the meta device (the shapes of a
    weights file's config, checked before anything is allocated) computes nothing."""
    with torch.inference_mode(False):  # a plain tensor, usable in training after inference
        r = torch.arange(window, device=device)
        coords = torch.stack(torch.meshgrid(r, r, indexing="ij")).flatten(1)  # (2, N)
        rel = coords[:, :, None] - coords[:, None, :] + window - 1  # (2, N, N)
        return rel[0] * (2 * window - 1) + rel[1]


def _per_window(bias: torch.Tensor, bw: int) -> torch.Tensor:
    """(nW, heads, N, N) -> (B * nW, heads, N, N) with bw = B * nW: the same masks for each image.

    No branch on B: while tracing for export, bw // nW is recorded from the input's shape, so the
    graph holds for any batch (a `bw != nW` test would bake in the traced batch). For one image
    the expand and reshape are views (no copy)."""
    nw, heads, n, _ = bias.shape
    return bias.unsqueeze(0).expand(bw // nw, nw, heads, n, n).reshape(bw, heads, n, n)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative-position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.window = window
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: (B * nW, N, C) with N = window^2; mask: (nW, N, N) or None
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B * nW, heads, N, head_dim)
        # (1, heads, N, N), in q's dtype (bf16 under autocast) before the mask is added: 4-D keeps
        # SDPA's fused CPU kernel, and the (nW, heads, N, N) sum is made once, in the compute dtype
        bias = self.rel_bias[:, relative_index(self.window, self.rel_bias.device)].to(q.dtype).unsqueeze(0)
        if mask is not None:
            bias = _per_window(bias + mask.unsqueeze(1), bw)  # (nW, heads, N, N) -> (B * nW, heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class ConvMLP(nn.Module):
    """Pointwise expand, 3x3 depthwise conv (locality and position), GELU, pointwise project.

    Works on channels-last tokens (B, H, W, C): the pointwise convs run as matrix products on
    their (out, in, 1, 1) weights, and the depthwise conv reads the same memory as a
    channels_last (B, C, H, W) view, so no layout copy is made."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        h = F.linear(x, self.fc1.weight.flatten(1), self.fc1.bias)  # (B, H, W, hidden)
        h = self.dw(h.permute(0, 3, 1, 2))  # (B, hidden, H, W) view, channels_last memory
        h = F.gelu(h).permute(0, 2, 3, 1)  # (B, H, W, hidden)
        return F.linear(h, self.fc2.weight.flatten(1), self.fc2.bias)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + WindowAttention(LN(x)); x + ConvMLP(LN(x)).

    Channels-last tokens (B, H, W, C) in and out: a Stage changes layout once, not every block."""

    def __init__(self, dim: int, heads: int, window: int, shift: bool, mlp_ratio: float):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvMLP(dim, mlp_ratio)

    def shift_for(self, h: int, w: int) -> int:
        """The window shift on an (h, w) map: half a window, unless one window covers it."""
        return self.window // 2 if self.shift and min(h, w) > self.window else 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, H, W, C); mask: this map's shifted-window mask when the caller has it (a Stage
        gets it once for all its shifted blocks), else it is fetched here."""
        b, h, w, c = x.shape
        ws = self.window
        if h % ws or w % ws:
            raise ValueError(f"feature map {h}x{w} is not a multiple of window {ws}")
        shift = self.shift_for(h, w)
        t = self.norm1(x)  # (B, H, W, C)
        if shift:
            t = torch.roll(t, (-shift, -shift), dims=(1, 2))
            if mask is None:
                mask = shifted_window_mask(h, w, ws, shift, x)
        else:
            mask = None
        t = window_merge(self.attn(window_partition(t, ws), mask), ws, b, h, w)
        if shift:
            t = torch.roll(t, (shift, shift), dims=(1, 2))
        x = x + t
        return x + self.mlp(self.norm2(x))


class Stage(nn.Sequential):
    """`depth` transformer blocks alternating plain and shifted windows; (B, C, H, W) in and out,
    channels-last (B, H, W, C) inside."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float):
        super().__init__(*[TransformerBlock(dim, heads, window, i % 2 == 1, mlp_ratio) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        shifted = [blk for blk in self if blk.shift_for(h, w)]
        mask = (shifted_window_mask(h, w, self[0].window, shifted[0].shift_for(h, w), x)
                if shifted else None)  # (nW, N, N), one for every shifted block of the stage
        t = x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, C)
        for blk in self:
            t = blk(t, mask)
        return t.permute(0, 3, 1, 2)  # (B, C, H, W) view of channels-last memory


class Downsample(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H/2, W/2) with an overlapping stride-2 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


UPSAMPLE_MODES = ("shuffle", "bilinear")


class Upsample(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, fH, fW). "shuffle": a conv then pixel shuffle (no
    checkerboard, but each of the f x f sub-positions has its own weights, so a flat input can
    come out f-periodic); "bilinear": interpolate, then a conv (position-independent)."""

    def __init__(self, c_in: int, c_out: int, factor: int = 2, mode: str = "shuffle"):
        super().__init__()
        if mode == "shuffle":
            self.conv = nn.Conv2d(c_in, c_out * factor * factor, 3, padding=1)
            self.resize = nn.PixelShuffle(factor)
        elif mode == "bilinear":
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
            self.resize = nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False)
        else:
            raise ValueError(f"upsample mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "shuffle":
            return self.resize(self.conv(x))
        return self.conv(self.resize(x))
