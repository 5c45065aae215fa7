import json

import numpy as np
import pytest
import torch

from vitrestore.data import ImageBank, list_images, step_generator
from vitrestore.engine.train import Trainer
from vitrestore.tasks import get_task


def make_trainer(cfg, resume=False):
    return Trainer(cfg, get_task(cfg.task).from_config(cfg), quiet=True, resume=resume)


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_worker_processes_give_the_same_run(tiny_cfg, tmp_path):
    """Batches are a pure function of the step: 2 worker processes == building them in-process."""
    runs = []
    for workers in (0, 2):
        cfg = tiny_cfg("train.steps=4", f"data.workers={workers}", f"train.out={tmp_path / f'w{workers}'}")
        t = make_trainer(cfg)
        t.fit()
        runs.append(t.G.state_dict())
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name


def test_gradient_accumulation_matches_the_full_batch(tiny_cfg):
    grads = []
    for acc in (1, 2):
        t = make_trainer(tiny_cfg(f"train.accumulate={acc}", "train.grad_clip=0"))
        bank = ImageBank(list_images(t.cfg.data.train[0]), min_size=32)
        t.train_step(bank)
        grads.append([p.grad.clone() for p in t.G.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_run_folder_has_samples_card_and_config(tiny_cfg):
    t = make_trainer(tiny_cfg())
    t.fit()
    grids = sorted((t.out / "samples").glob("step_*.png"))
    assert grids, "validation grids"
    import cv2
    grid = cv2.imread(str(grids[-1]))
    assert grid.shape[1] > 3 * 32  # input | output | target side by side
    card = (t.out / "MODEL_CARD.md").read_text()
    assert "denoise" in card and "steps: 10" in card and "val_psnr" in card
    assert (t.out / "config.yaml").is_file()


def test_paired_data_trains_and_validates_on_pairs(tiny_cfg, image_dir, tmp_path):
    import cv2
    inputs = tmp_path / "jpeg"
    inputs.mkdir()
    for p in sorted(image_dir.glob("*.png")):  # paired inputs: JPEG'd copies, same names
        cv2.imwrite(str(inputs / (p.stem + ".jpg")), cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 20])
    cfg = tiny_cfg(f"data.input={inputs}", "task=restore", "task_options={}", "train.steps=6")
    t = make_trainer(cfg)
    result = t.fit()
    # validation ran on the held-out pair: its input score is that JPEG's own PSNR, centre crop
    held_out = sorted(image_dir.glob("*.png"))[-1]
    clean, jpeg = (cv2.imread(str(f)).astype(np.float64) for f in (held_out, inputs / (held_out.stem + ".jpg")))
    h, w = clean.shape[:2]
    top, left = (h - 32) // 2, (w - 32) // 2
    mse = ((clean - jpeg)[top:top + 32, left:left + 32] ** 2).mean()
    assert result["val_psnr_input"] == pytest.approx(10 * np.log10(255 ** 2 / mse), abs=1e-3)
    assert result["val_psnr"] != result["val_psnr_input"]


def test_tensorboard_scalars_when_installed(tiny_cfg):
    pytest.importorskip("tensorboard")
    t = make_trainer(tiny_cfg())
    t.fit()
    assert list((t.out / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_time_budget_stretches_the_schedule_and_ends_the_run(tiny_cfg):
    """train.minutes: the run ends when the budget is spent, long before its nominal steps; the
    learning-rate schedule and the adversarial switch follow the budget's share, the final
    weights are validated and the spent time is checkpointed for --resume."""
    cfg = tiny_cfg("train.steps=100000", "train.adversarial_steps=100000", "train.minutes=0.1",
                   "loss.adversarial=nonsaturating", "train.val_every=100000", "train.log_every=1")
    t = make_trainer(cfg)
    t.fit()
    assert 0 < t.step < 100000
    assert t.sched >= t.total_steps - 1 and t.seconds >= 6.0
    records = [json.loads(line) for line in (t.out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if "lr" in r]
    assert "d_loss" in str(records) or any("d_" in k for r in records for k in r)  # the GAN stage ran
    assert lrs[-1] == pytest.approx(cfg.train.lr * 0.25)  # adversarial stage rate
    assert records[-1]["step"] == t.step and "val_psnr" in records[-1]
    st = torch.load(t.out / "checkpoint.pt", weights_only=False)
    assert st["seconds"] == pytest.approx(t.seconds)


def test_negative_time_budget_is_a_config_error(tiny_cfg):
    from vitrestore.config import ConfigError
    with pytest.raises(ConfigError, match="train.minutes"):
        make_trainer(tiny_cfg("train.minutes=-1"))
