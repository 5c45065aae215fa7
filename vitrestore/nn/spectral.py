"""Improved spectral normalisation (ViTGAN): W_hat = W * sigma(W_init) / sigma(W).

Plain spectral norm forces every layer to Lipschitz 1, which slows a ViT discriminator down a
lot; rescaling by the spectral norm at initialisation keeps the Lipschitz control while letting
each layer keep its initial gain. sigma(W) is tracked by one power iteration per training step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpectralScale(nn.Module):
    """A parametrisation for `torch.nn.utils.parametrize`: W -> W * sigma_init / sigma(W)."""

    def __init__(self, weight: torch.Tensor, eps: float = 1e-12):
        super().__init__()
        w = weight.detach().flatten(1)  # (out, in*k*k)
        self.eps = eps
        u = F.normalize(torch.randn(w.shape[0]), dim=0, eps=eps)
        for _ in range(20):
            v = F.normalize(w.t() @ u, dim=0, eps=eps)
            u = F.normalize(w @ v, dim=0, eps=eps)
        self.register_buffer("u", u)
        self.register_buffer("sigma_init", torch.dot(u, w @ v))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.flatten(1)
        if self.training:
            with torch.no_grad():
                v = F.normalize(w.t() @ self.u, dim=0, eps=self.eps)
                self.u.copy_(F.normalize(w @ v, dim=0, eps=self.eps))
        u = self.u.clone()  # later forwards update self.u in place; this graph keeps its own copy
        v = F.normalize(w.t() @ u, dim=0, eps=self.eps).detach()
        sigma = torch.dot(u, w @ v)
        return weight * (self.sigma_init / sigma)


def spectral(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Apply improved spectral normalisation to a Linear/Conv module's weight."""
    if enabled:
        nn.utils.parametrize.register_parametrization(module, "weight", SpectralScale(module.weight))
    return module
