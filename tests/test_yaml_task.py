"""A task defined only in YAML trains through the CLI, and its weights restore an image
through `vitrestore restore --weights`; the same config trains on 2 processes (gloo DDP)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from conftest import TINY, smooth_image
from vitrestore.cli import main
from vitrestore.metrics import psnr

PIPELINE = [{"op": "gaussian_blur", "p": 0.5, "sigma_min": 0.3, "sigma_max": 0.6},
            {"op": "gaussian_noise", "p": 1.0, "sigma_min": 20, "sigma_max": 30}]


def write_config(tmp_path, image_dir, **train):
    cfg = {**TINY, "task": "restore", "task_options": {"name": "clean", "pipeline": PIPELINE},
           "data": {**TINY["data"], "train": [str(image_dir)], "val_holdout": 1},
           "train": {**TINY["train"], "out": str(tmp_path / "run"), **train}}
    path = tmp_path / "deblur.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_yaml_task_trains_and_restores_through_the_cli(tmp_path, image_dir):
    cfg = write_config(tmp_path, image_dir, steps=150, lr=3e-3, warmup=10, val_every=150)
    res = CliRunner().invoke(main, ["train", str(cfg), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    weights = tmp_path / "run" / "weights.safetensors"
    assert weights.is_file()

    clean = smooth_image(np.random.default_rng(7), 64, 80)
    noise = np.random.default_rng(8).normal(0, 25, clean.shape)
    degraded = np.clip(clean + noise, 0, 255).round().astype(np.uint8)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), degraded[:, :, ::-1])
    res = CliRunner().invoke(main, ["restore", str(photo), "--weights", str(weights)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = cv2.imread(str(tmp_path / "photo_clean.png"))[:, :, ::-1]

    def t(a):
        return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255

    assert psnr(t(out), t(clean)) > psnr(t(degraded), t(clean)) + 3.0, "the YAML-defined model must clean the image"


@pytest.mark.slow
def test_two_process_gloo_training_and_rank0_checkpoint(tmp_path, image_dir):
    cfg = write_config(tmp_path, image_dir, steps=3, adversarial_steps=3, val_every=3, threads=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "vitrestore", "train", str(cfg), "-q"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished at step 6") == 1  # rank 0 alone reports
    run = tmp_path / "run"
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and ckpt["D"] is not None
    records = [r for r in (run / "metrics.jsonl").read_text().splitlines() if "val_psnr" in r]
    assert len(records) == 2  # steps 3 and 6, written once (rank 0)
    res = CliRunner().invoke(main, ["train", "--resume", str(run), "--set", "train.adversarial_steps=4", "-q"],
                             catch_exceptions=False)
    assert res.exit_code == 0 and "finished at step 7" in res.output, res.output
