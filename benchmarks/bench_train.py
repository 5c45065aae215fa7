"""Training throughput: patches per second for one process vs several (gloo DDP), same config.

    python benchmarks/bench_train.py configs/denoise.yaml --steps 60 --json bench_out/train.json

Each setting is a fresh `vitrestore train` run in a temporary folder; the rate is measured from
the metrics log between the first logged step (after warm-up) and the last, so start-up and
the final validation are not counted. `data.batch` is the global batch in every setting.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {
    "1 process, 2 threads": {"procs": 1, "threads": 2, "workers": 0},
    "1 process, 1 thread": {"procs": 1, "threads": 1, "workers": 0},
    "1 process, 1 thread + 1 data worker": {"procs": 1, "threads": 1, "workers": 1},
    "2 processes (gloo DDP), 1 thread each": {"procs": 2, "threads": 1, "workers": 0},
}


def measure(config: Path, steps: int, procs: int, threads: int, workers: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        sets = [f"train.out={tmp}/run", f"train.steps={steps}", "train.adversarial_steps=0", "train.log_every=10",
                f"train.val_every={10 * steps}", f"train.threads={threads}", f"data.workers={workers}",
                "train.checkpoint_minutes=1000", *extra]
        args = ["-m", "vitrestore", "train", str(config), "-q"] + [a for s in sets for a in ("--set", s)]
        if procs > 1:
            args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] + args
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, cwd=tmp)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        recs = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
        recs = [r for r in recs if "loss" in r]
        first, last = recs[1], recs[-1]  # skip the first 10 steps (warm-up)
        batch = first["patches_per_s"] / first["steps_per_s"]
        return (last["step"] - first["step"]) * batch / (last["time"] - first["time"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--set", dest="extra", action="append", default=[])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {}
    for name, s in SETTINGS.items():
        rate = measure(args.config.resolve(), args.steps, s["procs"], s["threads"], s["workers"], args.extra)
        results[name] = rate
        print(f"{name}: {rate:.1f} patches/s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
