"""The adversarial terms of a training step, one function per side, condition and candidate
passed separately (the trainer owns the optimisers, precision and micro-batches).

    generator_terms       the generator's adversarial loss (+ feature matching) through a
                          frozen discriminator
    discriminator_terms   the discriminator's loss on real and fake in one forward pass (DDP
                          needs one forward per backward), with R1 or the WGAN gradient penalty

Every draw (DiffAugment, the gradient penalty's mixing) comes from the step's generator `gen`,
in a fixed order, so a resumed run repeats the same step exactly.
"""
from __future__ import annotations

import torch

from ..augment import diff_augment
from ..config import LossConfig
from ..losses import d_loss, feature_matching, g_adv_loss, gradient_penalty, r1_penalty


def augment(cond: torch.Tensor, candidate: torch.Tensor, ops: str,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """DiffAugment, the same draw for a condition (B, Cc, H, W) and its candidate (B, C, H, W):
    a translation or cutout must move both alike, so they are augmented as one tensor."""
    both = diff_augment(torch.cat([cond, candidate], 1), ops, gen)  # (B, Cc + C, H, W)
    return both[:, : cond.shape[1]], both[:, cond.shape[1] :]


def generator_terms(D, cond: torch.Tensor, fake: torch.Tensor, real: torch.Tensor, lc: LossConfig,
                    gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """The generator's adversarial loss for `fake` (differentiable) beside `cond`, and feature
    matching against `real`'s discriminator features when weighted; D's weights are frozen by
    the caller."""
    fake_cond, fake_cand = augment(cond, fake, lc.diffaugment, gen)
    fake_logits, fake_feats = D(fake_cond, fake_cand)
    l_adv, logs = g_adv_loss(fake_logits, lc.adversarial)
    loss = lc.adversarial_weight * l_adv
    if lc.feature_matching_weight:
        real_cond, real_cand = augment(cond, real, lc.diffaugment, gen)
        with torch.no_grad():
            _, real_feats = D(real_cond, real_cand)
        l_fm, lg = feature_matching(real_feats, fake_feats)
        loss = loss + lc.feature_matching_weight * l_fm
        logs.update(lg)
    return loss, logs


def discriminator_terms(D_train, D, cond: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, lc: LossConfig,
                        gen: torch.Generator, regularise: bool, autocast) -> tuple[torch.Tensor, dict]:
    """The discriminator's loss on `real` and `fake` (detached) candidates beside `cond`, both
    through `D_train` (the DDP wrapper, or D) in one forward pass; with `regularise`, R1 on the
    real logits (or, for wgan-gp, the gradient penalty through the plain `D`), scaled for lazy
    regularisation every `lc.r1_every` steps. `autocast` is the trainer's precision context."""
    real_cond, real_cand = augment(cond, real, lc.diffaugment, gen)
    fake_cond, fake_cand = augment(cond, fake, lc.diffaugment, gen)
    real_cand = real_cand.detach().requires_grad_(regularise and lc.adversarial != "wgan-gp")
    b = cond.shape[0]
    with autocast():
        logits, _ = D_train(torch.cat([real_cond, fake_cond]), torch.cat([real_cand, fake_cand]))
    logits = logits.float()
    real_logits, fake_logits = logits[:b], logits[b:]
    loss, logs = d_loss(real_logits, fake_logits, lc.adversarial)
    if regularise:
        if lc.adversarial == "wgan-gp":
            pen, lg = gradient_penalty(D, real_cond, real_cand, fake_cand, gen)
            loss = loss + lc.r1_weight * pen * lc.r1_every
        else:
            pen, lg = r1_penalty(real_logits, real_cand)
            loss = loss + 0.5 * lc.r1_weight * pen * lc.r1_every
        logs = {**logs, **lg}
    return loss, logs
