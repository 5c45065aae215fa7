"""JPEG artefact removal with a model trained from configs/jpeg.yaml: PSNR/SSIM of the JPEG
file and of the restored image against the original, at several qualities, in one run.

    python benchmarks/bench_jpeg.py ../shared/data/Kodak24 --weights runs/jpeg/weights.safetensors \
        --qualities 10 20 40 --limit 8

The JPEGs are written with OpenCV (libjpeg, 4:2:0) and read back, exactly what a user's file is.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vitrestore.data import list_images
from vitrestore.metrics import psnr, ssim
from vitrestore.tasks import load_model


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--qualities", nargs="+", type=int, default=[10, 20, 40])
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    model = load_model(args.weights, device="cpu")
    paths = list_images(args.folder)[: args.limit or None]
    print("| quality | JPEG PSNR / SSIM | restored PSNR / SSIM | gain (dB) | s / MP |\n|---|---|---|---|---|")
    for q in args.qualities:
        pj, sj, pr, sr, sec, mp = [], [], [], [], 0.0, 0.0
        for p in paths:
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
            jpg = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
            clean = as_tensor(bgr[:, :, ::-1])
            t0 = time.perf_counter()
            out = model(jpg)
            sec += time.perf_counter() - t0
            mp += jpg.shape[0] * jpg.shape[1] / 1e6
            pj.append(psnr(as_tensor(jpg), clean))
            sj.append(ssim(as_tensor(jpg), clean))
            pr.append(psnr(as_tensor(out), clean))
            sr.append(ssim(as_tensor(out), clean))
        print(f"| {q} | {np.mean(pj):.2f} / {np.mean(sj):.4f} | {np.mean(pr):.2f} / {np.mean(sr):.4f} | "
              f"{np.mean(pr) - np.mean(pj):+.2f} | {sec / mp:.2f} |", flush=True)


if __name__ == "__main__":
    main()
