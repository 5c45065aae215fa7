"""Super-resolution benchmark: HR cropped to a multiple of the scale, LR made by a downscaler,
outputs quantised to 8 bits, PSNR/SSIM on the Y channel (BT.601) with a border of `scale`
pixels cut.

    python benchmarks/bench_sr.py ../shared/data/Set5 ../shared/data/Set14 --scales 2 4 \
        --methods bicubic,lanczos,vitrestore --json bench_out/sr.json          # file protocol
    python benchmarks/bench_sr.py ../shared/data/Set5 --protocol paper          # the papers' numbers

Protocols (`--protocol`):
  file   (default) the small image as users get it: made by each of `--downscalers` (default:
         every one in vitrestore/ops/downscale.py, each by its real library: MATLAB-compatible
         bicubic, Pillow bicubic / Lanczos / bilinear / box, OpenCV area / linear / cubic),
         written as an 8-bit PNG and read back through the CLI's reader.
  paper  the papers' protocol: MATLAB-compatible bicubic only, rounded to 8 bits in memory.

vitrestore uses the shipped `upscale-x<scale>` model, or `--weights x4=path.safetensors`.
Seconds per output megapixel are measured for every method in the same run.
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

from vitrestore.data import list_images, read_rgb_uint8
from vitrestore.io.images import read_image
from vitrestore.metrics import psnr, ssim
from vitrestore.ops.degrade import quantize
from vitrestore.ops.downscale import DOWNSCALERS, downscale
from vitrestore.ops.resize import imresize


def hr_and_lr(path: Path, s: int, down: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A test image (None if unreadable) cropped to a multiple of s, as (1, 3, H, W) float64 in
    [0, 1], and its small copy by downscaler `down`, 8-bit levels as float32."""
    hr = read_rgb_uint8(path)
    if hr is None:
        return None
    h, w = hr.shape[1:]
    hr = hr[:, : h - h % s, : w - w % s][None].double() / 255
    return hr, quantize(downscale(hr, (hr.shape[-2] // s, hr.shape[-1] // s), down)).float()


def lanczos(lr: torch.Tensor, s: int) -> torch.Tensor:
    a = (lr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    up = cv2.resize(a, (a.shape[1] * s, a.shape[0] * s), interpolation=cv2.INTER_LANCZOS4)
    return torch.from_numpy(up).permute(2, 0, 1)[None].float() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--protocol", choices=("file", "paper"), default="file")
    ap.add_argument("--downscalers", default=",".join(DOWNSCALERS),
                    help="file protocol: comma-separated names from vitrestore/ops/downscale.py")
    ap.add_argument("--methods", default="bicubic,lanczos,vitrestore")
    ap.add_argument("--weights", action="append", default=[], metavar="xS=PATH",
                    help="weights for a scale instead of the shipped model, e.g. x4=runs/sr4/weights.safetensors")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--tile", type=int, default=0, help="0 = whole image (test images are small)")
    ap.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                    help="vitrestore's backend; methods vitrestore-torch / vitrestore-bf16 run the same weights "
                         "on PyTorch in fp32 / bf16 autocast in the same run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    methods = args.methods.split(",")
    downscalers = ["matlab_bicubic"] if args.protocol == "paper" else args.downscalers.split(",")
    unknown = [d for d in downscalers if d not in DOWNSCALERS]
    if unknown:
        raise SystemExit(f"unknown downscaler(s) {', '.join(unknown)} (known: {', '.join(DOWNSCALERS)})")
    files = tempfile.TemporaryDirectory(prefix="bench_sr_")
    weights = {int(w.split("=")[0].lstrip("x")): w.split("=", 1)[1] for w in args.weights}
    models = {}  # (method, scale) -> model
    for m in ("vitrestore", "vitrestore-torch", "vitrestore-bf16"):
        if m in methods:
            from vitrestore.tasks import load_model

            for s in args.scales:
                models[m, s] = load_model(weights.get(s, f"upscale-x{s}"), device="cpu", tile=args.tile,
                                          backend=args.backend if m == "vitrestore" else "torch",
                                          precision={"vitrestore-torch": "fp32", "vitrestore-bf16": "bf16"}.get(m, "auto"))
    rows, lines = [], []
    for folder in args.folders:
        paths = list_images(folder)[: args.limit or None]
        for s in args.scales:
            for down in downscalers:
                acc = {m: {"psnr": [], "ssim": [], "sec": 0.0, "mp": 0.0} for m in methods}
                for i, p in enumerate(paths):
                    pair = hr_and_lr(p, s, down)
                    if pair is None:
                        continue
                    hr, lr = pair
                    if args.protocol == "file":  # the small image as a PNG file, read back as the CLI reads it
                        path = Path(files.name) / f"{i}.png"
                        u8 = (lr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                        cv2.imwrite(str(path), np.ascontiguousarray(u8[:, :, ::-1]))
                        lr = torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None].float() / 255
                    hr = hr.float()
                    for m in methods:
                        t0 = time.perf_counter()
                        if m == "bicubic":
                            sr = imresize(lr.double(), s).float()
                        elif m == "lanczos":
                            sr = lanczos(lr, s)
                        else:
                            sr = models[m, s].run_tensor(lr)
                        acc[m]["sec"] += time.perf_counter() - t0
                        acc[m]["mp"] += hr.shape[-1] * hr.shape[-2] / 1e6
                        sr = quantize(sr)
                        acc[m]["psnr"].append(psnr(sr, hr, border=s, y_channel=True))
                        acc[m]["ssim"].append(ssim(sr, hr, border=s, y_channel=True))
                for m in methods:
                    a = acc[m]
                    row = {"set": folder.name, "scale": s, "downscaler": down, "protocol": args.protocol,
                           "method": m, "images": len(a["psnr"]), "psnr_y": float(np.mean(a["psnr"])),
                           "ssim_y": float(np.mean(a["ssim"])), "sec_per_mp": a["sec"] / max(a["mp"], 1e-9)}
                    rows.append(row)
                    line = (f"{row['set']} x{s} {down} ({args.protocol}) {m}: {row['psnr_y']:.2f} dB / "
                            f"{row['ssim_y']:.4f} (Y), {row['sec_per_mp']:.3f} s/MP, {row['images']} images")
                    lines.append(line)
                    print(line, flush=True)
    files.cleanup()
    print(f"\n| set | scale | downscaler | {' | '.join(methods)} | vitrestore - bicubic |")
    print("|---" * (4 + len(methods)) + "|")
    for key in dict.fromkeys((r["set"], r["scale"], r["downscaler"]) for r in rows):
        got = {r["method"]: r for r in rows if (r["set"], r["scale"], r["downscaler"]) == key}
        cells = [f"{got[m]['psnr_y']:.2f} / {got[m]['ssim_y']:.4f}" for m in methods]
        gain = (f"{got['vitrestore']['psnr_y'] - got['bicubic']['psnr_y']:+.2f}"
                if "vitrestore" in got and "bicubic" in got else "-")
        print(f"| {key[0]} | x{key[1]} | {key[2]} | " + " | ".join(cells) + f" | {gain} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "card_lines": lines}, indent=1))


if __name__ == "__main__":
    main()
