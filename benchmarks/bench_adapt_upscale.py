"""`upscale --adapt` benchmark (issue 34): PSNR of bicubic, the shipped model and a copy adapted
on the folder's own small images (tasks/super_resolution_adapt.py), per downscaler.

    python benchmarks/bench_adapt_upscale.py ../shared/data/Set14 --downscalers cv2_area,cv2_linear,matlab_bicubic \
        --steps 250 --json bench_out/adapt_upscale_set14.json
    python benchmarks/bench_adapt_upscale.py ../shared/data/Set14 --seconds 60 --downscalers cv2_area  # steps 60 s buys

Protocol (benchmarks/bench_sr.py's file protocol): each HR cropped to a multiple of the scale,
the LR made by the named downscaler (vitrestore/ops/downscale.py, the real library), written as
an 8-bit PNG and read back through the CLI's reader; outputs quantised to 8 bits; PSNR on the Y
channel (BT.601) with a border of `scale` pixels cut (RGB PSNR printed too). One adapted copy per
downscaler, on the whole folder pooled (engine/adapt.py pooled_samples, as the CLI pools a
folder), then every image processed with it. `--steps N` fixes the step count (the CPU
may be shared: seconds are not repeatable); `--seconds S` reports how many steps S buys.

Variants for tuning (never tune on the set you report): --lr, --pairs, --pulls, --pull-weight,
--patch, --trains all|full (full: nn/generator.py's full-resolution path only), --downscaler-given
(skip the consistency pick, use the true downscaler: the pick's upper bound).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vitrestore.data import list_images
from vitrestore.engine.adapt import AdaptSettings, adapt, pooled_samples
from vitrestore.io.images import read_image
from vitrestore.metrics import psnr
from vitrestore.nn.generator import is_full_resolution
from vitrestore.ops.degrade import quantize
from vitrestore.ops.resize import imresize
from vitrestore.tasks import load_model
from vitrestore.tasks import super_resolution_adapt as sra

from bench_sr import hr_and_lr  # noqa: E402  (benchmarks/ is on sys.path when a script there runs)


def low_res(paths: list[Path], s: int, down: str, folder: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(hr, lr) float (1, 3, ., .) pairs; lr written as an 8-bit PNG and read back."""
    out = []
    for i, p in enumerate(paths):
        pair = hr_and_lr(p, s, down)
        if pair is None:
            continue
        hr, lr = pair
        path = folder / f"{down}_{i}.png"
        u8 = (lr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        cv2.imwrite(str(path), np.ascontiguousarray(u8[:, :, ::-1]))
        lr = torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None].float() / 255
        out.append((hr.float(), lr))
    return out


def scores(pairs, s: int, upscale) -> tuple[float, float]:
    """Mean PSNR (Y, RGB) over the pairs of upscale(lr), quantised to 8 bits."""
    y, rgb = [], []
    for hr, lr in pairs:
        sr = quantize(upscale(lr))
        y.append(psnr(sr, hr, border=s, y_channel=True))
        rgb.append(psnr(sr, hr, border=s, y_channel=False))
    return float(np.mean(y)), float(np.mean(rgb))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--downscalers", default="cv2_area,cv2_linear,matlab_bicubic")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="first N images of the folder only")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--pairs", type=int, default=None)
    ap.add_argument("--pulls", type=int, default=None)
    ap.add_argument("--pull-weight", type=float, default=None)
    ap.add_argument("--patch", type=int, default=None)
    ap.add_argument("--back-project", type=int, default=None, help="back-projection rounds of the pull targets")
    ap.add_argument("--trains", choices=("all", "full"), default=None)
    ap.add_argument("--downscaler-given", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name, value in (("PAIRS", args.pairs), ("PULLS", args.pulls), ("PULL_WEIGHT", args.pull_weight),
                        ("PATCH", args.patch), ("BACK_PROJECT", args.back_project)):
        if value is not None:
            setattr(sra, name, value)
    s = args.scale
    model = load_model(f"upscale-x{s}", device="cpu", backend="torch", precision="fp32", tile=0)
    task = model.task
    if args.lr is not None:
        task.adapt_lr = args.lr
    if args.trains == "full":
        sra.trains = is_full_resolution
    sra.batch.__defaults__ = (sra.PAIRS, sra.PULLS, sra.PULL_WEIGHT)  # the overrides above, in the defaults
    picked = {}
    prepare = task.adapt_prepare

    def logged_prepare(samples, base):  # records the downscaler the objective picked
        p = prepare(samples, base)
        picked.update(name=p.downscaler, errors=p.errors)
        return p

    task.adapt_prepare = logged_prepare
    paths = list_images(args.folder)[: args.limit or None]
    tmp = tempfile.TemporaryDirectory(prefix="bench_adapt_up_")
    rows = []
    for down in args.downscalers.split(","):
        pairs = low_res(paths, s, down, Path(tmp.name))
        if args.downscaler_given:
            sra.CANDIDATES = (down,)
        settings = AdaptSettings(seconds=args.seconds, steps=args.steps, seed=args.seed)
        samples = pooled_samples(list(range(len(pairs))), lambda i: (pairs[i][1], {}), settings)
        t0 = time.monotonic()
        adapted, res = adapt(model, samples, settings, quiet=True)
        sec = time.monotonic() - t0
        bic = scores(pairs, s, lambda lr: imresize(lr.double(), s).float())
        ship = scores(pairs, s, model.run_tensor)
        ada = scores(pairs, s, adapted.run_tensor)
        row = {"set": args.folder.name, "scale": s, "downscaler": down, "images": len(pairs),
               "steps": res.steps, "seconds": sec, "kept": res.kept, "picked": picked.get("name"),
               "pick_errors": picked.get("errors"), "score_base": res.score_base, "score_adapted": res.score_adapted,
               "loss_first": res.loss_first, "loss_last": res.loss_last,
               "bicubic_y": bic[0], "shipped_y": ship[0], "adapted_y": ada[0],
               "bicubic_rgb": bic[1], "shipped_rgb": ship[1], "adapted_rgb": ada[1],
               "settings": {"lr": task.adapt_lr, "pairs": sra.PAIRS, "pulls": sra.PULLS,
                            "pull_weight": sra.PULL_WEIGHT, "patch": sra.PATCH, "back_project": sra.BACK_PROJECT, "trains": args.trains or "all",
                            "seed": args.seed, "given": args.downscaler_given}}
        rows.append(row)
        errs = ", ".join(f"{k} {v:.2f}" for k, v in (picked.get("errors") or {}).items())
        print(f"{res.line()}\n  picked {picked.get('name')} ({errs})", flush=True)
        print(f"{row['set']} x{s} {down}: Y bicubic {bic[0]:.2f} shipped {ship[0]:.2f} ({ship[0] - bic[0]:+.2f}) "
              f"adapted {ada[0]:.2f} ({ada[0] - bic[0]:+.2f}; vs shipped {ada[0] - ship[0]:+.3f}) | RGB "
              f"{bic[1]:.2f} {ship[1]:.2f} {ada[1]:.2f} ({ada[1] - ship[1]:+.3f}) | {res.steps} steps {sec:.0f} s",
              flush=True)
    tmp.cleanup()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"argv": vars(args) | {"folder": str(args.folder), "json": str(args.json)},
                                         "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
