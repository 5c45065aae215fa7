"""A training run's folder: what the trainer writes, and nothing else writes.

    <out>/config.yaml         the resolved config
    <out>/checkpoint.pt       latest full training state (atomic replace)
    <out>/weights.safetensors EMA generator + config + card (what inference loads)
    <out>/MODEL_CARD.md       the card in words
    <out>/metrics.jsonl       one JSON object per log/validation event
    <out>/samples/step_N.png  validation grids: input | output | real sample
    <out>/tensorboard/        the same scalars, when tensorboard is installed

Only the main process (rank 0) writes; every write of a file other than metrics.jsonl is atomic.
A folder is changed only once `start` is called, after a run's setup has succeeded.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ..io.atomic import write_atomic
from ..weights import render_card, save_weights
from .checkpoint import save_checkpoint

RUN_FILES = ("config.yaml", "checkpoint.pt", "weights.safetensors", "MODEL_CARD.md", "metrics.jsonl")
RUN_FOLDERS = ("samples", "tensorboard")


def existing_run(out: Path) -> str | None:
    """The name of a run file already in `out`, or None when the folder holds no run."""
    return next((name for name in RUN_FILES if (out / name).exists()), None)


class RunFolder:
    def __init__(self, out: Path, main: bool = True):
        """`main`: this process writes (rank 0); on other ranks every method does nothing."""
        self.out, self.main = out, main
        self.tb = None

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"

    def sample_grid(self, step: int) -> Path:
        return self.out / "samples" / f"step_{step:07d}.png"

    def start(self, config: dict, clear: bool) -> None:
        """The run has started: with `clear` (a --force fresh start) the old run's files go
        first; then the resolved config is written and TensorBoard opened when installed."""
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        if clear:
            for name in RUN_FILES:
                (self.out / name).unlink(missing_ok=True)
            for name in RUN_FOLDERS:
                if (self.out / name).is_dir():
                    shutil.rmtree(self.out / name)
        write_atomic(self.out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.tb = SummaryWriter(str(self.out / "tensorboard"))

    def log(self, record: dict) -> None:
        """One event (a dict with 'step') appended to metrics.jsonl and, numbers only, to TensorBoard."""
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, record["step"])

    def save(self, training_state: dict, weights: dict, config: dict, card: dict) -> None:
        """The checkpoint, the weights file (with config and card) and MODEL_CARD.md, each atomically."""
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(training_state, self.checkpoint)
        save_weights(self.out / "weights.safetensors", weights, config, card)
        write_atomic(self.out / "MODEL_CARD.md", render_card(self.out.name, config, card))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
