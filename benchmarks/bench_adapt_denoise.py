"""`denoise --adapt` on real camera noise with ground truth: CC15 (Nam et al. 2016; Canon 5D
Mark III, Nikon D600, D800 at ISO 1600-6400), one folder per camera, as `vitrestore denoise
FOLDER --adapt SECONDS` runs it (the same pooled sample, seed, loop and self-check), against
the shipped model in the same run. PSNR / SSIM (RGB) against the CC15 means.

    python benchmarks/bench_adapt_denoise.py ../shared/data/CC15 --seconds 120
    python benchmarks/bench_adapt_denoise.py ../shared/data/CC15 --steps 1300   # repeatable

Printed per camera: noisy, shipped, adapted (the copy, kept or not), used (what the CLI
writes: the copy where the self-check kept it, else the shipped model), the self-check's
decision, steps and seconds. Also `--gaussian DIR --sigma S`: the nothing-gets-worse check on
8-bit Gaussian files (the noise the shipped model was trained on).
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vitrestore.engine.adapt import AdaptSettings, adapt, pooled_samples  # noqa: E402
from vitrestore.metrics import psnr, ssim  # noqa: E402
from vitrestore.tasks import load_model  # noqa: E402


def tensor(path: str) -> torch.Tensor:
    """An 8-bit RGB file -> (1, 3, H, W) uint8."""
    return torch.from_numpy(np.ascontiguousarray(cv2.imread(path)[:, :, ::-1])).permute(2, 0, 1)[None]


def groups(args) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """name -> [(noisy uint8, clean float)]."""
    out = collections.defaultdict(list)
    if args.gaussian:
        g = torch.Generator().manual_seed(0)
        files = [f for f in sorted(glob.glob(os.path.join(args.gaussian, "*"))) if f.lower().endswith((".png", ".tif", ".bmp"))]
        for f in files[: args.limit]:
            clean = tensor(f).float() / 255
            noisy = (clean + torch.randn(clean.shape, generator=g) * args.sigma / 255).clamp(0, 1)
            out[f"{Path(args.gaussian).name} sigma {args.sigma:g}"].append(((noisy * 255).round().to(torch.uint8),
                                                                            clean))
        return out
    for f in sorted(glob.glob(os.path.join(args.cc15, "*_real.png"))):
        cam = Path(f).name.split("_")[0]
        out[cam].append((tensor(f), tensor(f.replace("_real", "_mean")).float() / 255))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cc15", nargs="?", default="../shared/data/CC15")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--steps", type=int, default=None, help="a fixed step count instead of --seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated group names (e.g. d800)")
    ap.add_argument("--gaussian", default="", help="a folder of clean PNGs: 8-bit Gaussian files instead of CC15")
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--limit", type=int, default=None, help="the first N files of --gaussian")
    ap.add_argument("--noise-gain", type=float, default=None, help="trial: tasks/denoise_adapt.py NOISE_GAIN")
    ap.add_argument("--lr", type=float, default=None, help="trial: the denoiser's adapt_lr")
    ap.add_argument("--level", type=float, default=None,
                    help="run shipped and adapted with this --sigma (the level as a strength), adapting with it too")
    ap.add_argument("--model", default="denoise", help="the base model (shipped name or weights file)")
    args = ap.parse_args()
    if args.noise_gain is not None:
        from vitrestore.tasks import denoise_adapt

        denoise_adapt.NOISE_GAIN = args.noise_gain
    torch.set_num_threads(args.threads)
    base = load_model(args.model, device="cpu", ensemble=2)
    request = {} if args.level is None else {"sigma": args.level}
    if args.lr is not None:
        type(base.task).adapt_lr = args.lr
    settings = AdaptSettings(seconds=args.seconds, steps=args.steps)
    rows = []
    for name, pairs in groups(args).items():
        if args.only and name not in args.only.split(","):
            continue
        samples = pooled_samples(pairs, lambda p: (p[0], request), settings)
        used, res = adapt(base, samples, settings, quiet=True)
        scores = {k: [] for k in ("noisy", "shipped", "adapted", "used")}
        ssims = {k: [] for k in scores}
        for noisy, clean in pairs:
            outs = {"noisy": noisy.float() / 255, "shipped": base.run_tensor(noisy, **request).cpu()}
            outs["adapted"] = (res.adapted.run_tensor(noisy, **request).cpu() if res.adapted is not None
                               else outs["shipped"])
            outs["used"] = outs["adapted"] if res.kept else outs["shipped"]
            for k, o in outs.items():
                o = (o * 255).round() / 255  # the 8-bit file the CLI writes
                scores[k].append(psnr(o, clean))
                ssims[k].append(ssim(o, clean))
        row = {k: (float(np.mean(scores[k])), float(np.mean(ssims[k]))) for k in scores}
        rows.append((name, len(pairs), row, res))
        print(f"{name} ({len(pairs)} images): " + ", ".join(f"{k} {p:.2f}/{s:.4f}" for k, (p, s) in row.items())
              + f" | {res.line()}", flush=True)
    if len(rows) > 1:
        n = sum(r[1] for r in rows)
        mean = {k: sum(r[2][k][0] * r[1] for r in rows) / n for k in rows[0][2]}
        print("all (" + str(n) + " images): " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()
