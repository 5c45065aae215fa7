"""Training loop: a pixel-loss stage, then an adversarial stage; EMA of the generator;
validation PSNR/SSIM; atomic checkpoints with exact resume; JSONL metrics; progress bar.

Everything random in step `s` comes from `step_generator(seed, s)`, and the learning rate is
a pure function of the step, so resuming from a checkpoint reproduces the same steps exactly.

Run folder layout:
    <out>/config.yaml         the resolved config
    <out>/checkpoint.pt       latest full training state (atomic replace)
    <out>/weights.safetensors EMA generator + config + card (what inference loads)
    <out>/metrics.jsonl       one JSON object per log/validation event
"""
from __future__ import annotations

import copy
import json
import math
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from ..augment import diff_augment
from ..config import Config, config_to_dict, load_config
from ..data import ImageBank, load_validation, split_paths, step_generator
from ..losses import (LPIPSLoss, d_loss, feature_matching, g_adv_loss, gradient_penalty, ms_ssim_loss,
                      pixel_loss, r1_penalty)
from ..metrics import psnr, ssim
from ..nn.discriminator import Discriminator
from ..nn.generator import Generator
from ..task import Task
from ..weights import load_weights, save_weights


def build_generator(cfg: Config, task: Task) -> Generator:
    return Generator(task.generator_config(cfg.generator))


def build_discriminator(cfg: Config, task: Task) -> Discriminator:
    gcfg = task.generator_config(cfg.generator)
    return Discriminator(replace(cfg.discriminator, in_channels=task.disc_in_channels(gcfg)))


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up, cosine decay to lr_min over the pixel stage; adversarial stage at lr/4 constant."""
    t = cfg.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    if step < t.steps:
        frac = (step - t.warmup) / max(1, t.steps - t.warmup)
        return t.lr_min + 0.5 * (t.lr - t.lr_min) * (1 + math.cos(math.pi * frac))
    return t.lr * 0.25


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, cfg: Config, task: Task, device: str = "cpu", resume: bool = False, quiet: bool = False):
        self.cfg, self.task, self.device, self.quiet = cfg, task, torch.device(device), quiet
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.out = Path(cfg.train.out).expanduser()
        self.out.mkdir(parents=True, exist_ok=True)
        self.total_steps = cfg.train.steps + cfg.train.adversarial_steps
        torch.manual_seed(cfg.train.seed)  # initial weights are a function of the seed
        self.G = build_generator(cfg, task).to(self.device)
        if cfg.train.init_weights and not resume:  # fine-tune: the weights must fit this generator
            self.G.load_state_dict(load_weights(cfg.train.init_weights)[0])
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_g = torch.optim.AdamW(self.G.parameters(), lr=cfg.train.lr, betas=cfg.train.betas,
                                       weight_decay=cfg.train.weight_decay)
        self.D = self.opt_d = None
        if cfg.train.adversarial_steps:
            self.D = build_discriminator(cfg, task).to(self.device)
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.train.lr_d, betas=(0.5, 0.99))
        self.lpips = LPIPSLoss(cfg.loss.lpips_net) if cfg.loss.lpips_weight > 0 else None
        self.step = 0
        self.best: dict[str, float] = {}
        self.last_val: dict[str, float] = {}
        if resume:
            self._load_checkpoint()
        self.bank: ImageBank | None = None
        self._stop = False

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "config": config_to_dict(self.cfg),
            "step": self.step,
            "G": self.G.state_dict(), "ema": self.ema.state_dict(), "opt_g": self.opt_g.state_dict(),
            "D": self.D.state_dict() if self.D else None,
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "last_val": self.last_val,
        }

    def _load_checkpoint(self) -> None:
        path = self.out / "checkpoint.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no checkpoint to resume from")
        st = torch.load(path, map_location=self.device, weights_only=False)
        self.G.load_state_dict(st["G"])
        self.ema.load_state_dict(st["ema"])
        self.opt_g.load_state_dict(st["opt_g"])
        if self.D is not None and st.get("D") is not None:
            self.D.load_state_dict(st["D"])
            self.opt_d.load_state_dict(st["opt_d"])
        self.step = st["step"]
        self.last_val = st.get("last_val", {})

    def save(self) -> None:
        _atomic_torch_save(self.state(), self.out / "checkpoint.pt")
        card = {"task": self.task.name, "steps": self.step, "validation": self.last_val,
                "data": list(self.cfg.data.train), "config_file": self.cfg.source}
        save_weights(self.out / "weights.safetensors", self.ema.state_dict(), config_to_dict(self.cfg), card)

    def log(self, record: dict) -> None:
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    # --- steps -------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        lr = learning_rate(self.cfg, self.step)
        for group in self.opt_g.param_groups:
            group["lr"] = lr
        return lr

    def _update_ema(self) -> None:
        decay = self.cfg.train.ema_decay if self.step >= self.cfg.train.ema_start else 0.0
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.G.parameters()):
                e.lerp_(p, 1 - decay)
            for e, b in zip(self.ema.buffers(), self.G.buffers()):
                e.copy_(b)

    def _pixel_losses(self, out, batch) -> tuple[torch.Tensor, dict]:
        lc = self.cfg.loss
        loss, logs = pixel_loss(out, batch.target, lc.pixel, batch.mask)
        loss = loss * lc.pixel_weight
        if lc.msssim_weight:
            l_ms, lg = ms_ssim_loss(out.clamp(0, 1), batch.target)
            loss, logs = loss + lc.msssim_weight * l_ms, {**logs, **lg}
        if self.lpips is not None and self.lpips.available:
            l_p, lg = self.lpips(out, batch.target)
            loss, logs = loss + lc.lpips_weight * l_p, {**logs, **lg}
        return loss, logs

    def train_step(self, bank: ImageBank) -> dict:
        cfg = self.cfg
        gen = step_generator(cfg.train.seed, self.step)
        clean = bank.sample(gen, cfg.data.batch, cfg.data.crop)
        batch = self.task.degrade(clean, gen)
        batch = type(batch)(**{k: (v.to(self.device) if v is not None else None) for k, v in vars(batch).items()})
        lr = self._set_lr()
        self.G.train()
        logs: dict = {"lr": lr}
        adversarial = self.step >= cfg.train.steps and self.D is not None
        if adversarial:
            logs.update(self._d_step(batch, gen))
        out = self.G(batch.input, batch.cond)
        loss, lg = self._pixel_losses(out, batch)
        logs.update(lg)
        if adversarial:
            lc = cfg.loss
            self.D.requires_grad_(False)
            cond = self.task.disc_condition(batch)
            fake_in = diff_augment(torch.cat([cond, out], 1), lc.diffaugment, gen)
            fake_logits, fake_feats = self.D(fake_in[:, : cond.shape[1]], fake_in[:, cond.shape[1]:])
            l_adv, lg = g_adv_loss(fake_logits, lc.adversarial)
            loss = loss + lc.adversarial_weight * l_adv
            logs.update(lg)
            if lc.feature_matching_weight:
                real_in = diff_augment(torch.cat([cond, batch.target], 1), lc.diffaugment, gen)
                with torch.no_grad():
                    _, real_feats = self.D(real_in[:, : cond.shape[1]], real_in[:, cond.shape[1]:])
                l_fm, lg = feature_matching(real_feats, fake_feats)
                loss = loss + lc.feature_matching_weight * l_fm
                logs.update(lg)
            self.D.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.G.parameters(), cfg.train.grad_clip)
        self.opt_g.step()
        self._update_ema()
        logs["loss"] = float(loss.detach())
        self.step += 1
        return logs

    def _d_step(self, batch, gen: torch.Generator) -> dict:
        lc = self.cfg.loss
        with torch.no_grad():
            fake = self.G(batch.input, batch.cond)
        cond = self.task.disc_condition(batch)
        nc = cond.shape[1]
        real_in = diff_augment(torch.cat([cond, batch.target], 1), lc.diffaugment, gen)
        fake_in = diff_augment(torch.cat([cond, fake], 1), lc.diffaugment, gen)
        regularise = lc.r1_weight > 0 and self.step % max(1, lc.r1_every) == 0
        real_cand = real_in[:, nc:].detach().requires_grad_(regularise and lc.adversarial != "wgan-gp")
        real_logits, _ = self.D(real_in[:, :nc], real_cand)
        fake_logits, _ = self.D(fake_in[:, :nc], fake_in[:, nc:])
        loss, logs = d_loss(real_logits, fake_logits, lc.adversarial)
        if regularise:
            if lc.adversarial == "wgan-gp":
                pen, lg = gradient_penalty(self.D, real_in[:, :nc], real_in[:, nc:], fake_in[:, nc:], gen)
                loss = loss + lc.r1_weight * pen * lc.r1_every
            else:
                pen, lg = r1_penalty(real_logits, real_cand)
                loss = loss + 0.5 * lc.r1_weight * pen * lc.r1_every
            logs.update(lg)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return logs

    @torch.no_grad()
    def validate(self, images: list[torch.Tensor]) -> dict:
        """EMA generator on the validation images (degraded with a fixed seed): PSNR/SSIM."""
        ps, ss, ps_in = [], [], []
        for i, clean in enumerate(images):
            batch = self.task.validation_batch(clean, torch.Generator().manual_seed(10_000 + i))
            out = self.ema(batch.input.to(self.device), None if batch.cond is None else batch.cond.to(self.device))
            out = self.task.postprocess(out, batch.input.to(self.device)).cpu()
            ps.append(psnr(out, batch.target))
            ss.append(ssim(out, batch.target))
            if batch.input.shape == batch.target.shape:
                ps_in.append(psnr(batch.input, batch.target))
        res = {"val_psnr": sum(ps) / len(ps), "val_ssim": sum(ss) / len(ss)}
        if ps_in:
            res["val_psnr_input"] = sum(ps_in) / len(ps_in)
        return res

    # --- loop --------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self._stop = True

    def fit(self) -> dict:
        cfg = self.cfg
        (self.out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        d = cfg.data
        train_paths, val_paths = split_paths(d.train, d.val, d.val_holdout, d.max_images)
        bank = ImageBank(train_paths, min_size=d.min_size or d.crop)
        val = load_validation(val_paths, d.val_limit, d.val_size)
        old = signal.signal(signal.SIGTERM, self._on_signal)
        last_ckpt = time.time()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=self.quiet, dynamic_ncols=True,
                   desc=f"train {self.task.name}", file=sys.stderr)
        t0, s0 = time.time(), self.step
        try:
            while self.step < self.total_steps and not self._stop:
                logs = self.train_step(bank)
                bar.update(1)
                if self.step % cfg.train.log_every == 0 or self.step == self.total_steps:
                    rate = (self.step - s0) / max(1e-9, time.time() - t0)
                    self.log({"step": self.step, "time": time.time(), "steps_per_s": rate, **logs})
                    bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.1e}")
                if val and (self.step % cfg.train.val_every == 0 or self.step == self.total_steps):
                    self.last_val = {"step": self.step, **self.validate(val)}
                    self.log(self.last_val)
                    bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_val.items() if k != "step"))
                if time.time() - last_ckpt > cfg.train.checkpoint_minutes * 60:
                    self.save()
                    last_ckpt = time.time()
        except KeyboardInterrupt:
            bar.write("interrupted: saving checkpoint")
        finally:
            bar.close()
            signal.signal(signal.SIGTERM, old)
            self.save()
        return self.last_val


def train_from_config(path: str | None, overrides: list[str], task_lookup, device: str = "cpu",
                      resume: bool = False, quiet: bool = False) -> Trainer:
    """Build a Trainer from a YAML file (or a run folder's config when resuming)."""
    cfg = load_config(path, overrides)
    task = task_lookup(cfg.task).from_config(cfg)
    return Trainer(cfg, task, device=device, resume=resume, quiet=quiet)
