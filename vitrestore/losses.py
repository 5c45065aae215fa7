"""Losses. Each returns (loss, logs) where logs maps names to floats for the metrics log.

Adversarial forms, with D(.) the discriminator's logits and s the sigmoid:
    nonsaturating: L_D = -E[log s(D(x))] - E[log(1 - s(D(G(z))))],  L_G = -E[log s(D(G(z)))]
    hinge:         L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))],  L_G = -E[D(G(z))]
    wgan-gp:       L_D = E[D(G(z))] - E[D(x)] + gp,                  L_G = -E[D(G(z))]
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from .metrics import ssim_map

Logs = dict[str, float]


def pixel_loss(x: torch.Tensor, y: torch.Tensor, kind: str = "charbonnier", weight: torch.Tensor | None = None,
               eps: float = 1e-3) -> tuple[torch.Tensor, Logs]:
    """Per-pixel loss between output x and target y, optionally weighted per pixel."""
    d = x - y
    if kind == "charbonnier":
        per = torch.sqrt(d * d + eps * eps)
    elif kind == "l1":
        per = d.abs()
    elif kind == "l2":
        per = d * d
    else:
        raise ValueError(f"unknown pixel loss {kind!r} (known: charbonnier, l1, l2)")
    loss = (per * weight).sum() / weight.expand_as(per).sum().clamp_min(1) if weight is not None else per.mean()
    return loss, {f"pixel_{kind}": float(loss.detach())}


def ms_ssim_loss(x: torch.Tensor, y: torch.Tensor, max_scales: int = 5) -> tuple[torch.Tensor, Logs]:
    """1 - MS-SSIM, using as many scales (up to 5) as the image size allows (window 7 at each)."""
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333], device=x.device)
    scales = max(1, min(max_scales, 1 + int(torch.log2(torch.tensor(min(x.shape[-2:]) / 7.0)).floor())))
    w = weights[:scales] / weights[:scales].sum()
    vals = []
    for s in range(scales):
        full, cs = ssim_map(x, y, window=7, sigma=1.5)
        vals.append((full if s == scales - 1 else cs).mean().clamp_min(1e-6))
        if s < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    ms = torch.prod(torch.stack(vals) ** w)
    loss = 1 - ms
    return loss, {"ms_ssim": float(ms.detach())}


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> tuple[torch.Tensor, Logs]:
    """Discriminator loss from logits on real and (detached) fake inputs."""
    if kind == "nonsaturating":
        loss = F.softplus(-real).mean() + F.softplus(fake).mean()
    elif kind == "hinge":
        loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    elif kind == "wgan-gp":
        loss = fake.mean() - real.mean()
    else:
        raise ValueError(f"unknown adversarial loss {kind!r} (known: nonsaturating, hinge, wgan-gp)")
    return loss, {"d_loss": float(loss.detach()), "d_real": float(real.detach().mean()), "d_fake": float(fake.detach().mean())}


def g_adv_loss(fake: torch.Tensor, kind: str) -> tuple[torch.Tensor, Logs]:
    """Generator adversarial loss from logits on fake inputs."""
    if kind == "nonsaturating":
        loss = F.softplus(-fake).mean()  # -log sigmoid(D(G(z)))
    elif kind in ("hinge", "wgan-gp"):
        loss = -fake.mean()
    else:
        raise ValueError(f"unknown adversarial loss {kind!r} (known: nonsaturating, hinge, wgan-gp)")
    return loss, {"g_adv": float(loss.detach())}


def r1_penalty(logits: torch.Tensor, real_input: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """R1: E[||grad_x D(x)||^2] on real inputs (real_input must require grad), per logit.

    A PatchGAN has one logit per patch: the gradient of their sum is divided by the number of
    logits per image (squared norm / P), i.e. the mean squared gradient of one patch logit when
    patches see disjoint pixels. Without it the penalty grows with the crop size (x1024 at 256 px
    with 8 px patches) and pins the discriminator to a constant."""
    (grad,) = torch.autograd.grad(logits.sum(), real_input, create_graph=True)
    pen = grad.pow(2).flatten(1).sum(1).mean() / logits[0].numel()
    return pen, {"r1": float(pen.detach())}


def gradient_penalty(disc, condition: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                     gen: torch.Generator) -> tuple[torch.Tensor, Logs]:
    """WGAN-GP: E[(||grad D(interp)|| - 1)^2] on random interpolates of real and fake."""
    a = torch.rand(real.shape[0], 1, 1, 1, generator=gen).to(real)
    mix = (a * real + (1 - a) * fake).requires_grad_(True)
    logits, _ = disc(condition, mix)
    (grad,) = torch.autograd.grad(logits.sum(), mix, create_graph=True)
    pen = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return pen, {"gp": float(pen.detach())}


def feature_matching(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> tuple[torch.Tensor, Logs]:
    """Mean L1 between discriminator features of real (detached) and fake inputs."""
    loss = sum(F.l1_loss(f, r.detach()) for r, f in zip(real_feats, fake_feats)) / max(1, len(real_feats))
    return loss, {"feature_matching": float(loss.detach())}


_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def lpips_backbone_path(net: str) -> Path | None:
    """The torchvision backbone checkpoint lpips needs, if it is present locally."""
    env = os.environ.get("VITRESTORE_LPIPS_BACKBONE")
    if env:
        return Path(env) if Path(env).is_file() else None
    path = Path(torch.hub.get_dir()) / "checkpoints" / _BACKBONE_FILES.get(net, "")
    return path if path.is_file() else None


_NOTICE_SHOWN: set[str] = set()


class LPIPSLoss(torch.nn.Module):
    """LPIPS through the `lpips` package, only when its backbone weights are on disk.

    Never downloads. When the weights are missing, `available` is False, one notice is
    printed (once per process) and the loss returns zero; the caller's other losses carry on.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.model = None
        path = lpips_backbone_path(net)
        if path is None:
            if net not in _NOTICE_SHOWN:
                _NOTICE_SHOWN.add(net)
                print(f"notice: LPIPS skipped: {net} backbone weights not found locally "
                      f"({torch.hub.get_dir()}/checkpoints/{_BACKBONE_FILES.get(net, '?')})", file=sys.stderr)
            return
        import lpips  # imported lazily: it is slow and prints on import

        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        target = model.net
        slices = [getattr(target, f"slice{i}") for i in range(1, target.N_slices + 1)]
        for layer_slice in slices:
            for name, module in layer_slice.named_children():
                for pname, _ in module.named_parameters():
                    module.get_parameter(pname).data.copy_(features[f"{name}.{pname}"])
        self.model = model.eval().requires_grad_(False)

    @property
    def available(self) -> bool:
        return self.model is not None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        if self.model is None:
            return x.new_zeros(()), {}
        loss = self.model(x * 2 - 1, y * 2 - 1).mean()
        return loss, {"lpips": float(loss.detach())}
