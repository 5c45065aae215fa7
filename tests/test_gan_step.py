"""The GAN step's pieces: DiffAugment moves a condition and its candidate alike; the
discriminator's loss pushes real up and fake down."""
import contextlib

import torch

from vitrestore.config import DiscriminatorConfig, LossConfig
from vitrestore.engine.gan_step import augment, discriminator_terms
from vitrestore.nn.discriminator import Discriminator


def test_condition_and_candidate_get_the_same_augmentation():
    x = torch.rand(4, 3, 32, 32)
    cond, cand = augment(x, x.clone(), "translation,cutout", torch.Generator().manual_seed(1))
    assert torch.equal(cond, cand) and not torch.equal(cond, x)  # moved, and moved alike


def test_discriminator_terms_train_d_to_separate_real_from_fake():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(in_channels=6, dim=16, patch=4, depth=1, heads=2))
    opt = torch.optim.Adam(D.parameters(), lr=5e-3)
    lc = LossConfig(diffaugment="", r1_weight=0.01)
    cond = torch.rand(2, 3, 8, 8)
    real, fake = cond.clone(), torch.rand(2, 3, 8, 8)  # real: the condition itself; fake: noise
    gen = torch.Generator().manual_seed(0)
    for step in range(20):
        loss, logs = discriminator_terms(D, D, cond, real, fake, lc, gen, regularise=step % 4 == 0,
                                         autocast=contextlib.nullcontext)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["d_real"] > logs["d_fake"] + 1.0 and logs["d_loss"] < 0.7, logs  # from 2 ln 2 = 1.386
