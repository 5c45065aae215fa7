import json

import pytest
import torch

import vitrestore.tasks  # noqa: F401
from vitrestore.data import ImageBank, list_images, step_generator
from vitrestore.engine.train import Trainer
from vitrestore.registry import get_task


def make_trainer(cfg, resume=False):
    return Trainer(cfg, get_task(cfg.task).from_config(cfg), quiet=True, resume=resume)


def test_training_lowers_the_loss(tiny_cfg, image_dir):
    cfg = tiny_cfg("train.steps=200", "train.lr=5e-3", "train.warmup=1", "task_options.sigma_min=30",
                   "task_options.poisson_prob=0", "task_options.jpeg_prob=0")
    t = make_trainer(cfg)
    bank = ImageBank(list_images(image_dir), min_size=32)

    def eval_loss():
        from vitrestore.losses import pixel_loss
        total = 0.0
        for s in range(4):
            gen = step_generator(123, s)
            b = t.task.degrade(bank.sample(gen, 4, 32), gen)
            with torch.no_grad():
                total += float(pixel_loss(t.G(b.input, b.cond), b.target)[0])
        return total

    before = eval_loss()
    for _ in range(80):
        t.train_step(bank)
    assert eval_loss() < 0.85 * before


def test_fit_writes_metrics_checkpoint_and_weights(tiny_cfg):
    cfg = tiny_cfg()
    t = make_trainer(cfg)
    t.fit()
    out = t.out
    assert (out / "checkpoint.pt").is_file() and (out / "weights.safetensors").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val_psnr" in r for r in records) and any("loss" in r for r in records)
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize("adv", ["nonsaturating", "hinge", "wgan-gp"])
def test_resume_reproduces_next_steps_exactly(tiny_cfg, adv):
    """Train 6 steps straight vs 4 steps, checkpoint, resume in a fresh trainer, 2 more steps:
    identical weights. Covers the adversarial stage (D steps, R1/GP, feature matching)."""
    over = ["train.steps=3", "train.adversarial_steps=3", f"loss.adversarial={adv}", "loss.r1_every=2",
            "loss.feature_matching_weight=1.0", "loss.msssim_weight=0.1"]
    a = make_trainer(tiny_cfg(*over, "train.out=" + str(tiny_cfg().train.out) + "_a"))
    bank = ImageBank(list_images(tiny_cfg().data.train[0]), min_size=32)
    for _ in range(6):
        logs = a.train_step(bank)
    assert "d_loss" in logs and "g_adv" in logs and "feature_matching" in logs

    cfg_b = tiny_cfg(*over, "train.out=" + str(tiny_cfg().train.out) + "_b")
    b = make_trainer(cfg_b)
    for _ in range(4):
        b.train_step(bank)
    b.save()
    c = make_trainer(cfg_b, resume=True)
    assert c.step == 4
    for _ in range(2):
        c.train_step(bank)
    for (n, p), q in zip(a.G.state_dict().items(), c.G.state_dict().values()):
        assert torch.equal(p, q), n
    for p, q in zip(a.D.state_dict().values(), c.D.state_dict().values()):
        assert torch.equal(p, q)


def test_resume_without_checkpoint_is_a_clear_error(tiny_cfg):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        make_trainer(tiny_cfg(), resume=True)


def test_init_weights_starts_from_a_weights_file(tiny_cfg, tiny_weights):
    from vitrestore.weights import load_weights

    t = make_trainer(tiny_cfg(f"train.init_weights={tiny_weights}"))
    state = load_weights(tiny_weights)[0]
    for name, value in t.G.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert not all(torch.equal(v, state[n]) for n, v in make_trainer(tiny_cfg()).G.state_dict().items())
