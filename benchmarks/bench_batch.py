"""Batch-processing benchmark: throughput of the overlapped pipeline against a plain
one-at-a-time loop, and peak memory against image size.

    python benchmarks/bench_batch.py --json bench_out/batch.json

1. N generated 256x256 noisy photos (default 500): images/s for a plain loop (read, model,
   write, one image at a time) and for `run_jobs` (reader threads, same-size batches, writer
   thread), in one run, same model, same files.
2. A few large images: megapixels/s, plain loop vs pipeline.
3. Peak RSS of `vitrestore denoise` (a fresh process each) on 1, 12 and 50 MP photos.
Generated images only: nothing from ../shared/data is needed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vitrestore.batch.plan import plan_jobs
from vitrestore.batch.run import RunOptions, run_jobs
from vitrestore.io.images import read_image, write_image
from vitrestore.tasks import load_model


def photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth synthetic scene with edges plus sigma-15 noise, (H, W, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 4, 3)
        img[:, :, c] = 128 + 80 * np.sin(xx / w * fx * np.pi + ph) * np.cos(yy / h * fy * np.pi)
    for _ in range(6):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        img[y0 : y0 + h // 5, x0 : x0 + w // 5] = rng.uniform(20, 235, 3)
    img += rng.normal(0, 15, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder(folder: Path, n: int, h: int, w: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_image(folder / f"img{i:04d}.png", photo(rng, h, w))


def plain_loop(model, src: Path, dst: Path) -> float:
    dst.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in sorted(src.glob("*.png")):
        img = read_image(p)
        write_image(dst / p.name, model(img.pixels))
    return time.perf_counter() - t0


def pipeline(model, src: Path, dst: Path, batch: int = 8) -> float:
    jobs, _ = plan_jobs([src], dst, "denoised")

    def process(images):
        return model.run_arrays([im.pixels for im in images])

    t0 = time.perf_counter()
    summary = run_jobs(jobs, process, RunOptions(quiet=True, batch=batch))
    assert summary.done == len(jobs), summary.line()
    return time.perf_counter() - t0


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a child process, from its own VmHWM.

    Not getrusage: a child's ru_maxrss starts from the high-water mark of the (large) parent it
    was forked from, which would inflate small results.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-500:]}")
    return hwm / 1024, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=500, help="number of 256x256 images")
    ap.add_argument("--large", type=int, default=2, help="number of 4 MP images for MP/s")
    ap.add_argument("--rss-sizes", default="1,12,50", help="megapixel sizes for the peak-RSS runs ('' = skip)")
    ap.add_argument("--model", default="denoise")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = load_model(args.model, device="cpu")
    res: dict = {"threads": torch.get_num_threads(), "model": args.model}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.small:
            make_folder(tmp / "small", args.small, 256, 256, 0)
            model(read_image(next((tmp / "small").glob("*.png"))).pixels)  # warm-up
            t_plain = plain_loop(model, tmp / "small", tmp / "small_plain")
            t_pipe = pipeline(model, tmp / "small", tmp / "small_pipe", batch=8)
            t_pipe1 = pipeline(model, tmp / "small", tmp / "small_pipe1", batch=1)
            n = args.small
            res["small"] = {"images": n, "plain_img_s": n / t_plain, "pipeline_img_s": n / t_pipe,
                            "pipeline_batch1_img_s": n / t_pipe1, "ratio": t_plain / t_pipe,
                            "ratio_batch1": t_plain / t_pipe1}
            print(f"{n} x 256x256: plain {n / t_plain:.2f} img/s, pipeline (batches of 8) {n / t_pipe:.2f} img/s "
                  f"({t_plain / t_pipe:.2f}x), pipeline unbatched {n / t_pipe1:.2f} img/s ({t_plain / t_pipe1:.2f}x)",
                  flush=True)
        if args.large:
            make_folder(tmp / "large", args.large, 1728, 2304, 1)  # ~4 MP each
            mp = args.large * 1728 * 2304 / 1e6
            t_plain = plain_loop(model, tmp / "large", tmp / "large_plain")
            t_pipe = pipeline(model, tmp / "large", tmp / "large_pipe")
            res["large"] = {"images": args.large, "megapixels": mp, "plain_mp_s": mp / t_plain,
                            "pipeline_mp_s": mp / t_pipe, "ratio": t_plain / t_pipe}
            print(f"{args.large} x 4 MP: plain {mp / t_plain:.3f} MP/s, pipeline {mp / t_pipe:.3f} MP/s "
                  f"({t_plain / t_pipe:.2f}x)", flush=True)
        res["rss"] = []
        for size in [float(s) for s in args.rss_sizes.split(",") if s]:
            h = int(round((size * 1e6 * 3 / 4) ** 0.5))
            w = int(round(size * 1e6 / h))
            src = tmp / f"big_{size:g}mp.png"
            write_image(src, photo(np.random.default_rng(2), h, w))
            rss, sec = peak_rss_mb([sys.executable, "-m", "vitrestore", "denoise", str(src), "-o",
                                    str(tmp / f"out_{size:g}.png"), "--model", args.model, "-q"])
            res["rss"].append({"megapixels": h * w / 1e6, "peak_rss_mb": rss, "seconds": sec})
            print(f"{h * w / 1e6:.1f} MP ({w}x{h}): peak RSS {rss:.0f} MB, {sec:.1f} s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
