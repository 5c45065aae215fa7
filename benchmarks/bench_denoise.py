"""Denoising benchmark: PSNR/SSIM and seconds per megapixel for the noisy input, OpenCV
non-local means (h tuned on training images), CBM3D (optional `bm3d` package) and vitrestore,
all on the same images and the same noise in one run.

    python benchmarks/bench_denoise.py ../shared/data/CBSD68 ../shared/data/Kodak24 \
        ../shared/data/McMaster --sigmas 15 25 50 --tune-on ../shared/data/CBSD432 \
        --json bench_out/denoise.json

Protocol: clean 8-bit RGB image x, noisy y = x + N(0, sigma^2) in float (not clipped, as in the
DnCNN/FFDNet papers), seed = image index. Methods that need 8-bit input (NLM) get y clipped and
rounded. PSNR/SSIM on RGB, no border crop, after quantising outputs to 8 bits.
Timing is wall-clock per image, summed, divided by the megapixels processed; `threads` is the
torch thread count (CBM3D and NLM run in their own libraries).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from vitrestore.data import list_images, read_rgb_uint8
from vitrestore.metrics import psnr, ssim


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float [0, 1] -> (1, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None]


def nlm(noisy: np.ndarray, h: tuple[float, float]) -> np.ndarray:
    """OpenCV colour NLM with (h luminance, h colour) on the clipped 8-bit image."""
    u8 = (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)[:, :, ::-1]
    out = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(u8), None, h[0], h[1], 7, 21)
    return out[:, :, ::-1].astype(np.float32) / 255


def tune_nlm(paths: list[Path], sigma: float, count: int = 4) -> tuple[float, float]:
    """The (h, h_colour) grid point with the best mean PSNR on a few training images."""
    best, best_h = -1.0, (sigma, sigma)
    imgs = []
    for i, p in enumerate(paths[:count]):
        clean = read_rgb_uint8(p).permute(1, 2, 0).numpy().astype(np.float32) / 255
        clean = clean[:192, :192]
        noisy = clean + np.random.default_rng(1000 + i).normal(0, sigma / 255, clean.shape).astype(np.float32)
        imgs.append((clean, noisy))
    grid = [(f * sigma, f * sigma * c) for f in (0.4, 0.55, 0.7, 0.85, 1.0, 1.2) for c in (0.5, 1.0, 1.5)]
    for h in grid:
        score = np.mean([psnr(to_tensor(nlm(n, h)), to_tensor(c)) for c, n in imgs])
        if score > best:
            best, best_h = score, h
    return best_h


def markdown_table(results: list[dict], methods: list[str]) -> str:
    """PSNR / SSIM per (set, sigma) and method, and each method's mean s/MP, as a Markdown table."""
    head = "| set | sigma | images | " + " | ".join(methods) + " |"
    lines = [head, "|" + "---|" * (3 + len(methods))]
    keys = sorted({(r["set"], r["sigma"], r["images"]) for r in results}, key=lambda k: (k[0], k[1]))
    for key in keys:
        cells = []
        for m in methods:
            r = next(x for x in results if (x["set"], x["sigma"], x["images"]) == key and x["method"] == m)
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.4f}")
        lines.append(f"| {key[0]} | {key[1]:g} | {key[2]} | " + " | ".join(cells) + " |")
    speed = []
    for m in methods:
        rs = [r["sec_per_mp"] for r in results if r["method"] == m]
        speed.append("-" if m == "noisy" else f"{sum(rs) / len(rs):.2f}")
    lines.append("| **s / MP** | | | " + " | ".join(speed) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", type=Path, help="folders of clean images")
    ap.add_argument("--sigmas", nargs="+", type=float, default=[15, 25, 50])
    ap.add_argument("--model", default="denoise", help="shipped model name or weights file")
    ap.add_argument("--limit", type=int, default=0, help="first N images of each set (0 = all)")
    ap.add_argument("--methods", default="noisy,nlm,cbm3d,vitrestore,vitrestore-sigma")
    ap.add_argument("--tune-on", type=Path, help="clean training images for tuning NLM's h")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--ensemble", type=int, default=1, help="test-time flips/rotations averaged (1, 2, 4, 8)")
    ap.add_argument("--json", type=Path, help="write results here")
    ap.add_argument("--save-dir", type=Path, help="save vitrestore / CBM3D outputs of the first image per set here")
    args = ap.parse_args()
    methods = args.methods.split(",")

    from vitrestore.tasks import load_model

    model = load_model(args.model, device="cpu", tile=args.tile, ensemble=args.ensemble)
    model_x2 = load_model(args.model, device="cpu", tile=args.tile, ensemble=2) if "vitrestore-x2" in methods else None
    bm3d = None
    if "cbm3d" in methods:
        try:
            import bm3d  # noqa: F401
        except ImportError:
            print("notice: CBM3D skipped: install the optional extra (pip install 'vitrestore[bench]')")
            methods.remove("cbm3d")
    tune_paths = list_images(args.tune_on) if args.tune_on else []
    results = []
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'set':<12}{'sigma':>6}  {'method':<18}{'PSNR':>8}{'SSIM':>8}{'s/MP':>9}  images")
    for folder in args.sets:
        paths = list_images(folder)[: args.limit or None]
        for sigma in args.sigmas:
            h = tune_nlm(tune_paths, sigma) if (tune_paths and "nlm" in methods) else (0.7 * sigma, 0.7 * sigma)
            acc = {m: {"psnr": [], "ssim": [], "sec": 0.0} for m in methods}
            mp = 0.0
            for i, p in enumerate(paths):
                clean = read_rgb_uint8(p).permute(1, 2, 0).numpy().astype(np.float32) / 255
                noisy = clean + np.random.default_rng(i).normal(0, sigma / 255, clean.shape).astype(np.float32)
                mp += clean.shape[0] * clean.shape[1] / 1e6
                ct = to_tensor(clean)
                for m in methods:
                    t0 = time.perf_counter()
                    if m == "noisy":
                        out = to_tensor(noisy)
                    elif m == "nlm":
                        out = to_tensor(nlm(noisy, h))
                    elif m == "cbm3d":
                        import bm3d as _b

                        out = to_tensor(np.asarray(_b.bm3d_rgb(noisy, sigma / 255), dtype=np.float32))
                    elif m == "vitrestore":
                        out = model.run_tensor(to_tensor(noisy))
                    elif m == "vitrestore-sigma":
                        out = model.run_tensor(to_tensor(noisy), sigma=sigma)
                    elif m == "vitrestore-x2":  # --ensemble 2: the image and its mirror, averaged
                        out = model_x2.run_tensor(to_tensor(noisy))
                    else:
                        raise SystemExit(f"unknown method {m}")
                    acc[m]["sec"] += time.perf_counter() - t0
                    acc[m]["psnr"].append(psnr(out, ct))
                    acc[m]["ssim"].append(ssim(out, ct))
                    if args.save_dir and i == 0:
                        args.save_dir.mkdir(parents=True, exist_ok=True)
                        u8 = (out[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1]
                        cv2.imwrite(str(args.save_dir / f"{folder.name}_s{sigma:g}_{m}.png"), u8)
            for m in methods:
                a = acc[m]
                row = {"set": folder.name, "sigma": sigma, "method": m, "images": len(paths),
                       "psnr": float(np.mean(a["psnr"])), "ssim": float(np.mean(a["ssim"])),
                       "sec_per_mp": a["sec"] / mp if m != "noisy" else 0.0}
                if m == "nlm":
                    row["h"], row["h_colour"] = h
                results.append(row)
                print(f"{folder.name:<12}{sigma:>6g}  {m:<18}{row['psnr']:>8.2f}{row['ssim']:>8.4f}"
                      f"{row['sec_per_mp']:>9.2f}  {len(paths)}", flush=True)
    card_lines = [f"{r['set']} sigma {r['sigma']:g} ({r['images']} images): PSNR {r['psnr']:.2f} dB, "
                  f"SSIM {r['ssim']:.4f}, {r['sec_per_mp']:.2f} s/MP (CPU, {torch.get_num_threads()} threads)"
                  + ("" if r["method"] == "vitrestore" else f" [{r['method']}]")
                  for r in results if r["method"].startswith("vitrestore")]
    print()
    print(markdown_table(results, methods))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "card_lines": card_lines,
                                         "threads": torch.get_num_threads()}, indent=1))


if __name__ == "__main__":
    main()
