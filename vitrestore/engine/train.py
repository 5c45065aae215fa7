"""Training loop: a pixel-loss stage, then an adversarial stage; EMA of the generator;
validation PSNR/SSIM; atomic checkpoints with exact resume; JSONL metrics; progress bar.

Everything random in step `s` comes from `step_generator(seed, s, rank)`, and the learning
rate is a pure function of the step, so resuming from a checkpoint reproduces the same steps
exactly, and batches can be built ahead by worker processes.

Distributed (torchrun): `data.batch` is the *global* batch. Each of N processes draws
batch / N images per step (its own seeded stream) and DistributedDataParallel averages the
gradients, so one optimiser step sees the same number of images with the same learning rate
as a one-process run: more processes make a run faster, not different. `train.accumulate`
splits each process's share further into micro-batches (same semantics, less memory).
Rank 0 alone logs, validates and writes checkpoints.

A run folder (`run_folder.py`: its layout, what is ours, the lock) is never overwritten by a
fresh run (refused unless `force`, which clears only a run's own files), is used by one run at a
time (locked by rank 0 while it trains), and is only changed once a run has started cleanly
(config checked, data loaded); checkpoints hold tensors and plain values only and load with
weights_only=True (`checkpoint.py`). The adversarial terms of a step are in `gan_step.py`.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..config import Config, ConfigError, config_to_dict
from ..data import (ImageBank, PairBank, centre_crop_pair, load_validation, match_pairs, split_paths,
                    step_generator)
from ..losses import LPIPSLoss, ms_ssim_loss, pixel_loss
from ..nn.discriminator import Discriminator
from ..backbones import build_generator
from ..task import Batch, Task
from ..weights import TASK_PREFIX, WeightsError, load_weights, split_task_state
from . import distributed as ddp
from .checkpoint import CheckpointError, config_difference, load_checkpoint, state_dict_error
from .gan_step import discriminator_terms, generator_terms
from .preflight import check_training_setup
from .run_folder import MARKER, RunFolder, checkpoint_stamp, read_marker
from .samples import save_grid
from .stream import TrainStream, batch_loader


def task_generator(cfg: Config, task: Task) -> nn.Module:
    """The config's generator network (generator.arch), with the task's condition channels and scale."""
    return build_generator(cfg.generator, task.cond_channels, task.scale)


def build_discriminator(cfg: Config, task: Task) -> Discriminator:
    return Discriminator(replace(cfg.discriminator, in_channels=task.disc_in_channels(cfg.generator)))


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up, cosine decay to lr_min over the pixel stage; the adversarial stage at
    lr * train.lr_adversarial (0.25 by default), constant."""
    t = cfg.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    if step < t.steps:
        frac = (step - t.warmup) / max(1, t.steps - t.warmup)
        return t.lr_min + 0.5 * (t.lr - t.lr_min) * (1 + math.cos(math.pi * frac))
    return t.lr * t.lr_adversarial


class Trainer:
    def __init__(self, cfg: Config, task: Task, device: str = "cpu", resume: bool = False, quiet: bool = False,
                 force: bool = False):
        """`resume` continues the run in train.out; otherwise train.out must not hold a run
        already, unless `force` (its files are then replaced when the new run starts), nor anything
        that is not a run's, nor be in use by another run (run_folder.RunFolder.check)."""
        self.cfg, self.task = cfg, task
        self.dist = ddp.DistInfo.from_env()
        self.quiet = quiet or not self.dist.main
        self.run = RunFolder(Path(cfg.train.out).expanduser(), main=self.dist.main)
        self.fresh, self.force = not resume, force
        self.run.check(resume=resume, force=force)
        self.loaded_stamp = None  # the checkpoint resumed from, as it was when loaded
        check_training_setup(cfg, task.scale, self.dist.world)
        task.check_training(cfg.source)
        self.device = ddp.setup(self.dist, torch.device(device))
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.total_steps = cfg.train.steps + cfg.train.adversarial_steps
        self.rank_batch = cfg.data.batch // self.dist.world  # this process's share of the global batch
        torch.manual_seed(cfg.train.seed)  # initial weights are a function of the seed
        self.G = task_generator(cfg, task).to(self.device)
        if cfg.train.init_weights and not resume:  # fine-tune: the weights must fit this generator
            self._load_init_weights(cfg.train.init_weights)
        self.ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_g = torch.optim.AdamW(self.G.parameters(), lr=cfg.train.lr, betas=cfg.train.betas,
                                       weight_decay=cfg.train.weight_decay)
        self.D = self.opt_d = None
        if cfg.train.adversarial_steps:
            self.D = build_discriminator(cfg, task).to(self.device)
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.train.lr_d, betas=(0.5, 0.99))
        self.lpips = LPIPSLoss(cfg.loss.lpips_net) if cfg.loss.lpips_weight > 0 else None
        self._setup_precision()
        self.step = 0
        self.seconds = 0.0  # training wall time so far, over all sessions (for train.minutes)
        self.sched = 0  # position in the schedule: the step, or the budget's share of it
        self.last_val: dict[str, float] = {}
        self.interrupted = False  # stopped by Ctrl-C / SIGTERM before the last step
        if resume:
            self._load_checkpoint()
        # DDP wrappers for the passes whose gradients must be averaged; self.G / self.D stay the
        # plain modules (state dicts, EMA, and the frozen-D pass of the generator step).
        self.G_train, self.D_train = self.G, self.D
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_train = DDP(self.G, device_ids=ids)
            if self.D is not None:
                self.D_train = DDP(self.D, device_ids=ids)
        self._stop = False
        self.command = ""  # how the run was started, for the model card

    def _setup_precision(self) -> None:
        prec = self.cfg.train.precision
        self.amp_dtype = None
        if prec != "fp32":
            if self.device.type == "cuda":
                self.amp_dtype = torch.bfloat16 if prec == "bf16" else torch.float16
            elif self.dist.main:
                print(f"notice: train.precision={prec} applies on CUDA only; training in fp32 on {self.device.type}",
                      file=sys.stderr)
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=fp16)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # --- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "config": config_to_dict(self.cfg),
            "step": self.step, "seconds": self.seconds,
            "G": self.G.state_dict(), "ema": self.ema.state_dict(), "opt_g": self.opt_g.state_dict(),
            "D": self.D.state_dict() if self.D else None,
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "last_val": self.last_val,
            "run_id": self.run.run_id,  # the run the folder's marker names (None: saved outside fit)
        }

    def _load_init_weights(self, name: str) -> None:
        src = self.cfg.source
        try:
            state, config, _ = load_weights(name)
        except WeightsError as exc:
            raise ConfigError(f"{src}: train.init_weights: {exc}") from None
        if config.get("task") != self.task.name:
            raise ConfigError(f"{src}: train.init_weights: {name} is a model of task {config.get('task')}, "
                              f"this run trains {self.task.name}")
        try:
            self.G.load_state_dict(split_task_state(state)[0])
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"{src}: train.init_weights: {name} does not fit this generator "
                              f"({state_dict_error(exc)})") from None

    def _load_checkpoint(self) -> None:
        path = self.run.checkpoint
        self.loaded_stamp = checkpoint_stamp(path)
        st = load_checkpoint(path, self.device)
        marker = read_marker(self.out)
        if marker and isinstance(st.get("run_id"), str) and st["run_id"] != marker["run_id"]:
            raise CheckpointError(f"{path}: saved by another run than the one {MARKER} names (run {st['run_id']}, "
                                  f"not {marker['run_id']}); refused: start over with --force or another train.out")
        mine = config_to_dict(self.cfg)
        sections = ("generator", "discriminator") if self.D is not None and st.get("D") is not None else ("generator",)
        diff = config_difference(st["config"], mine, sections)
        if diff:
            raise CheckpointError(f"{path}: does not fit {self.cfg.source}: {diff}")
        try:
            self.G.load_state_dict(st["G"])
            self.ema.load_state_dict(st["ema"])
            self.opt_g.load_state_dict(st["opt_g"])
            if self.D is not None and st.get("D") is not None:
                self.D.load_state_dict(st["D"])
                self.opt_d.load_state_dict(st["opt_d"])
            for name in ("scaler_g", "scaler_d"):
                if st.get(name):
                    getattr(self, name).load_state_dict(st[name])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path}: does not fit the model of {self.cfg.source} "
                                  f"({state_dict_error(exc)})") from None
        self.step = self.sched = st["step"]
        seconds, last_val = st.get("seconds", 0.0), st.get("last_val", {})
        self.seconds = float(seconds) if isinstance(seconds, (int, float)) else 0.0
        self.last_val = last_val if isinstance(last_val, dict) else {}

    def card(self) -> dict:
        return {"task": self.task.name, "steps": self.step, "validation": self.last_val,
                "data": list(self.cfg.data.train), "config_file": self.cfg.source,
                "parameters": sum(p.numel() for p in self.G.parameters()), "command": self.command}

    def save(self) -> None:
        """Checkpoint and EMA weights (rank 0 only), each written atomically."""
        if not self.dist.main:
            return
        weights = {**self.ema.state_dict(), **{TASK_PREFIX + k: v for k, v in self.task.state().items()}}
        self.run.save(self.state(), weights, config_to_dict(self.cfg), self.card())

    def log(self, record: dict) -> None:
        self.run.log(record)

    # --- steps -------------------------------------------------------------------------------
    def _set_lr(self) -> float:
        lr = learning_rate(self.cfg, self.sched)
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

    def _pixel_losses(self, out, batch, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        lc = self.cfg.loss
        custom = self.task.generator_losses(out, batch, gen)
        if custom is not None:  # a task without a pixel target (style transfer)
            return custom
        loss, logs = pixel_loss(out, batch.target, lc.pixel, batch.loss_weight)
        loss = loss * lc.pixel_weight
        if lc.msssim_weight:
            l_ms, lg = ms_ssim_loss(out.clamp(0, 1), batch.target)
            loss, logs = loss + lc.msssim_weight * l_ms, {**logs, **lg}
        if self.lpips is not None and self.lpips.available:
            l_p, lg = self.lpips(out, batch.target)
            loss, logs = loss + lc.lpips_weight * l_p, {**logs, **lg}
        return loss, logs

    def _adversarial_losses(self, out, batch, gen) -> tuple[torch.Tensor, dict]:
        """Generator-side GAN terms through the frozen plain D (no DDP sync needed)."""
        return generator_terms(self.D, self.task.disc_condition(batch), self.task.disc_candidate(out, batch),
                               batch.real_sample, self.cfg.loss, gen)

    @staticmethod
    def _sync(module, last: bool):
        """DDP: all-reduce gradients only on the last micro-batch of a step."""
        if last or not hasattr(module, "no_sync"):
            return contextlib.nullcontext()
        return module.no_sync()

    def _optimiser_step(self, params, opt, scaler) -> None:
        scaler.unscale_(opt)
        if self.cfg.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip)
        scaler.step(opt)
        scaler.update()

    def stream(self, bank: ImageBank | PairBank) -> TrainStream:
        c = self.cfg
        return TrainStream(bank, self.task, c.train.seed, self.rank_batch, c.data.crop, self.dist.rank)

    def train_step(self, data: Batch | ImageBank | PairBank) -> dict:
        """One optimiser step on a Batch (or one drawn from a bank for the current step)."""
        cfg = self.cfg
        batch = data if isinstance(data, Batch) else self.stream(data)[self.step]
        micro = batch.to(self.device).split(cfg.train.accumulate)
        gen = step_generator(cfg.train.seed, self.step, self.dist.rank, stream=1)
        lr = self._set_lr()
        self.G.train()
        logs: dict = {"lr": lr}
        adversarial = self.sched >= cfg.train.steps and self.D is not None
        if adversarial:
            logs.update(self._d_step(micro, gen))
            self.D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        total = 0.0
        for i, mb in enumerate(micro):
            with self._sync(self.G_train, i == len(micro) - 1):
                with self._autocast():
                    out = self.G_train(mb.input, mb.cond)
                    loss, lg = self._pixel_losses(out.float(), mb, gen)
                    if adversarial:
                        l_adv, lg_adv = self._adversarial_losses(out.float(), mb, gen)
                        loss, lg = loss + l_adv, {**lg, **lg_adv}
                self.scaler_g.scale(loss / len(micro)).backward()
            total += float(loss.detach()) / len(micro)
            logs.update(lg)
        if adversarial:
            self.D.requires_grad_(True)
        self._optimiser_step(self.G.parameters(), self.opt_g, self.scaler_g)
        self._update_ema()
        logs["loss"] = total
        self.step += 1
        if not cfg.train.minutes:
            self.sched = self.step
        return logs

    def _d_step(self, micro: list[Batch], gen: torch.Generator) -> dict:
        """One discriminator step over the micro-batches (gan_step.discriminator_terms)."""
        lc = self.cfg.loss
        regularise = lc.r1_weight > 0 and self.step % max(1, lc.r1_every) == 0
        self.opt_d.zero_grad(set_to_none=True)
        logs: dict = {}
        for i, mb in enumerate(micro):
            with torch.no_grad(), self._autocast():
                fake = self.task.disc_candidate(self.G(mb.input, mb.cond).float(), mb)
            with self._sync(self.D_train, i == len(micro) - 1):
                loss, lg = discriminator_terms(self.D_train, self.D, self.task.disc_condition(mb), mb.real_sample,
                                               fake, lc, gen, regularise, self._autocast)
                self.scaler_d.scale(loss / len(micro)).backward()
            logs.update(lg)
        self._optimiser_step(self.D.parameters(), self.opt_d, self.scaler_d)
        return logs

    # --- validation --------------------------------------------------------------------------
    @functools.cached_property
    def pairs(self) -> list[tuple[Path, Path]]:
        """(input, target) files of paired data (data.input), matched once per run."""
        d = self.cfg.data
        return match_pairs(Path(d.input).expanduser(), Path(d.train[0]).expanduser())[0]

    def validation_batches(self, val_paths: list[Path]) -> list[Batch]:
        """Fixed validation batches (degraded once with fixed seeds, or taken from pairs)."""
        d = self.cfg.data
        multiple = self.task.scale
        if d.input:
            keep = set(val_paths)
            out = []
            for inp, tgt in [pr for pr in self.pairs if pr[1] in keep][: d.val_limit]:
                x, y = load_validation([inp], 1, 0)[0], load_validation([tgt], 1, 0)[0]
                out.append(self.task.paired_batch(*centre_crop_pair(x, y, d.val_size, multiple)))
            return out
        images = load_validation(val_paths, d.val_limit, d.val_size, multiple)
        return [self.task.validation_batch(clean, torch.Generator().manual_seed(10_000 + i))
                for i, clean in enumerate(images)]

    @torch.no_grad()
    def validate(self, batches: list[Batch], grid_path: Path | None = None) -> dict:
        """EMA generator on the validation batches: the task's metrics, averaged (PSNR/SSIM for
        tasks with a target), and a sample grid PNG."""
        sums: dict[str, float] = {}
        rows = []
        for batch in batches:
            out = self.ema(batch.input.to(self.device), None if batch.cond is None else batch.cond.to(self.device))
            out = self.task.finish_batch(out, batch.to(self.device)).cpu()
            for k, v in self.task.metrics(out, batch).items():
                sums[k] = sums.get(k, 0.0) + v
            if len(rows) < 4:
                rows.append((batch.input, out, batch.real_sample))
        if grid_path is not None and rows:
            save_grid(grid_path, rows)
        return {f"val_{k}": v / len(batches) for k, v in sums.items()}

    # --- loop --------------------------------------------------------------------------------
    @property
    def out(self) -> Path:
        """The run folder's path (train.out)."""
        return self.run.out

    def _on_signal(self, signum, frame) -> None:
        self._stop = True

    def _bank(self, train_paths: list[Path]) -> ImageBank | PairBank:
        d = self.cfg.data
        if d.input:
            keep = set(train_paths)
            return PairBank([pr for pr in self.pairs if pr[1] in keep], self.task.scale, d.cache)
        return ImageBank(train_paths, min_size=d.min_size or d.crop, cache=d.cache)

    def _schedule_position(self) -> int:
        """With train.minutes, the schedule advances with the larger of steps done and time spent:
        warm-up, cosine decay and the adversarial switch land at the same fractions of the budget."""
        budget = self.cfg.train.minutes * 60
        by_time = int(self.seconds / budget * self.total_steps) if budget else 0
        return max(self.step, by_time)

    def _validate_and_log(self, val: list[Batch], bar) -> None:
        """Validate at the current step: sample grid, metrics log, one progress line."""
        grid = self.run.sample_grid(self.step)
        self.last_val = {"step": self.step, **self.validate(val, grid)}
        self.log(self.last_val)
        bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.last_val.items() if k != "step"))

    def fit(self) -> dict:
        cfg, d = self.cfg, self.cfg.data
        train_paths, val_paths = split_paths(d.train, d.val, d.val_holdout, d.max_images)
        try:
            bank = self._bank(train_paths)
        except ValueError as exc:  # every file unreadable: name the key and the file
            raise ConfigError(f"{cfg.source}: data.train: {exc}") from None
        val = self.validation_batches(val_paths) if self.dist.main else []
        self._start_run()
        try:
            self._train(bank, val)
            self.save()  # after an error mid-run the folder keeps the last periodic checkpoint
            ddp.barrier(self.dist)
        finally:
            self.run.close()  # the folder's lock is released once the last file is written
        return self.last_val

    def _start_run(self) -> None:
        """Rank 0 locks and prepares the run folder (RunFolder.start); every rank learns whether
        it could, so that none goes on alone."""
        error = None
        try:
            self.run.start(config_to_dict(self.cfg), resume=not self.fresh, force=self.force, task=self.task.name,
                           stamp=self.loaded_stamp)
        except (ConfigError, OSError) as exc:
            error = exc
        failed = ddp.agree_max([float(error is not None)], self.dist, self.device)[0]
        if error is not None:
            raise error
        if failed:
            raise ConfigError(f"{self.out}: rank 0 could not start the run (its error says why)")

    def _train(self, bank: ImageBank | PairBank, val: list[Batch]) -> None:
        """The training loop from the current step: logs, validation, periodic checkpoints; a
        SIGTERM or Ctrl-C ends it at a step boundary (`interrupted`)."""
        cfg, d = self.cfg, self.cfg.data
        old = signal.signal(signal.SIGTERM, self._on_signal)
        last_ckpt = time.time()
        bar = tqdm(total=self.total_steps, initial=self.step, disable=self.quiet, dynamic_ncols=True,
                   desc=f"train {self.task.name}", file=sys.stderr)
        t0, s0, seconds0 = time.time(), self.step, self.seconds
        loader = batch_loader(self.stream(bank), self.step, self.total_steps, d.workers)
        try:
            for batch in loader:
                self.seconds = seconds0 + time.time() - t0
                stop, sched = ddp.agree_max([float(self._stop), self._schedule_position()], self.dist, self.device)
                if stop:
                    self.interrupted = True
                    break
                self.sched = int(sched)
                if self.sched >= self.total_steps:  # the time budget is spent
                    if val and self.last_val.get("step") != self.step:
                        self._validate_and_log(val, bar)
                    bar.write(f"time budget of {cfg.train.minutes:g} min spent at step {self.step}")
                    break
                logs = self.train_step(batch)
                bar.update(1)
                if self.step % cfg.train.log_every == 0 or self.step == self.total_steps:
                    rate = (self.step - s0) / max(1e-9, time.time() - t0)
                    logs = {"steps_per_s": rate, "patches_per_s": rate * d.batch, **logs}
                    self.log({"step": self.step, "time": time.time(), **logs})
                    bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.1e}",
                                    patches_s=f"{logs['patches_per_s']:.1f}")
                if val and (self.step % cfg.train.val_every == 0 or self.step == self.total_steps):
                    self._validate_and_log(val, bar)
                if time.time() - last_ckpt > cfg.train.checkpoint_minutes * 60:
                    self.save()
                    last_ckpt = time.time()
        except KeyboardInterrupt:
            self.interrupted = True
            bar.write("interrupted: saving checkpoint")
        finally:
            bar.close()
            del loader
            signal.signal(signal.SIGTERM, old)

def build_trainer(cfg: Config, task_lookup, path: str | Path | None, overrides: list[str], device: str = "cpu",
                  resume: bool = False, quiet: bool = False, force: bool = False) -> Trainer:
    """A Trainer for a loaded config; `path` and `overrides` are how it was asked for (the card's command)."""
    task = task_lookup(cfg.task).from_config(cfg)
    trainer = Trainer(cfg, task, device=device, resume=resume, quiet=quiet, force=force)
    trainer.command = " ".join(["vitrestore train", str(path)] + [f"--set {o}" for o in overrides])
    return trainer
