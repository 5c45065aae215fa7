"""Training batches as a map-style dataset indexed by step, so worker processes build them
ahead of the model (crop, decode, degrade) and any number of workers give the same batches.

    stream = TrainStream(bank, task, seed, batch=8, crop=128, rank=0)
    stream[step] -> Batch  (this rank's share of the step's global batch)
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from ..data import ImageBank, PairBank, step_generator
from ..task import Batch, Task


class TrainStream(Dataset):
    def __init__(self, bank: ImageBank | PairBank, task: Task, seed: int, batch: int, crop: int, rank: int = 0):
        self.bank, self.task, self.seed, self.batch, self.crop, self.rank = bank, task, seed, batch, crop, rank

    def __len__(self) -> int:  # indexed by step; the sampler decides which steps are drawn
        return 2**62

    def __getitem__(self, step: int) -> Batch:
        gen = step_generator(self.seed, step, self.rank)
        if isinstance(self.bank, PairBank):
            inp, target = self.bank.sample(gen, self.batch, self.crop)
            return self.task.paired_batch(inp, target)
        return self.task.degrade(self.bank.sample(gen, self.batch, self.crop), gen)


def _as_is(batch: Batch) -> Batch:
    return batch


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers share the CPU with the model; one thread each


def batch_loader(stream: TrainStream, first_step: int, last_step: int, workers: int) -> DataLoader:
    """Batches for steps first_step .. last_step - 1, in order, built by `workers` processes."""
    return DataLoader(stream, batch_size=None, sampler=range(first_step, last_step), num_workers=workers,
                      worker_init_fn=_one_thread if workers else None,
                      prefetch_factor=4 if workers else None, collate_fn=_as_is)
