"""The denoiser's level (`--sigma`) on real camera noise with ground truth: CC15 per camera,
blind against each given level, as `vitrestore denoise --sigma S` runs it (default ensemble 2).
Does the level mean something on real photos: is there a level that beats blind, and does a
larger level remove more?

    python benchmarks/bench_level_real.py ../shared/data/CC15 --sigmas 5 10 15 20 30
    python benchmarks/bench_level_real.py --model runs/denoise-level/weights.safetensors

Printed per camera and for all 15: PSNR / SSIM (RGB, against the CC15 means) blind and at each
level, and `est`: each photo's own level, the Immerkaer estimate on 2x2 means
(vitrestore/ops/selfsup.py noise_std) times `--est-factors`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_adapt_denoise import groups  # noqa: E402
from vitrestore.metrics import psnr, ssim  # noqa: E402
from vitrestore.ops.selfsup import noise_std  # noqa: E402
from vitrestore.tasks import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cc15", nargs="?", default="../shared/data/CC15")
    ap.add_argument("--model", default="denoise")
    ap.add_argument("--sigmas", nargs="+", type=float, default=[5, 10, 15, 20, 30])
    ap.add_argument("--est-factors", nargs="*", type=float, default=[1.0, 2.0])
    ap.add_argument("--ensemble", type=int, default=2)
    args = ap.parse_args()
    args.gaussian = None
    model = load_model(args.model, device="cpu", ensemble=args.ensemble)
    runs = ["blind"] + [f"sigma {s:g}" for s in args.sigmas] + [f"est x{f:g}" for f in args.est_factors]
    scores: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for cam, pairs in groups(args).items():
        for noisy, clean in pairs:
            x = noisy.float() / 255
            est = noise_std(x) * 255
            for run in runs:
                if run == "blind":
                    request = {}
                elif run.startswith("sigma"):
                    request = {"sigma": float(run.split()[1])}
                else:
                    request = {"sigma": min(255.0, est * float(run.split("x")[1]))}
                out = model(noisy, **request).float() / 255  # uint8 in, uint8 out, as the CLI writes
                scores.setdefault(cam, {}).setdefault(run, []).append((psnr(out, clean), ssim(out, clean)))
            print(f"{cam}: estimated level {est:.2f}", flush=True)
    scores["all"] = {run: [s for cam in list(scores) for s in scores[cam][run]] for run in runs}
    print("\n| camera | " + " | ".join(runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for cam, per in scores.items():
        cells = [f"{sum(p for p, _ in v) / len(v):.2f} / {sum(s for _, s in v) / len(v):.4f}"
                 for v in (per[r] for r in runs)]
        print(f"| {cam} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
