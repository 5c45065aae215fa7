"""Denoising benchmark: PSNR/SSIM and seconds per megapixel for the noisy input, OpenCV
non-local means (h tuned on training images), CBM3D (optional `bm3d` package) and vitrestore,
all on the same images and the same noise in one run.

    python benchmarks/bench_denoise.py ../shared/data/CBSD68 ../shared/data/Kodak24 \
        ../shared/data/McMaster --sigmas 15 25 50 --tune-on ../shared/data/CBSD432 \
        --json bench_out/denoise.json                          # Gaussian, file protocol
    python benchmarks/bench_denoise.py ../shared/data/Kodak24 --noise camera \
        --strengths low mid high --tune-on ../shared/data/CBSD432   # processed-camera noise

Protocols (`--protocol`):
  file   (default) what a user has: the noisy image is clipped, rounded to 8 bits and written as
         a PNG file (camera noise: as the camera's JPEG, quality 90); every method reads that
         file back, vitrestore through the same reader as the CLI.
  paper  the DnCNN/FFDNet papers' protocol (Gaussian only): y = x + N(0, sigma^2) in float,
         never clipped or rounded; methods that need 8-bit input (NLM) get y clipped and rounded.
Noise (`--noise`):
  gaussian  white Gaussian at each of `--sigmas` (0-255 scale), seed = image index.
  camera    processed-camera noise (vitrestore/ops/camera.py: shot + read noise on a random
            camera's raw mosaic, demosaiced, colour matrix, gamma, tone curve) at each of
            `--strengths` (sensor shot noise: low 1e-3, mid 3e-3, high 1e-2), then JPEG q90.
            CBM3D is given each image's true noise std (of the noisy file against the clean).
PSNR/SSIM on RGB, no border crop, after quantising outputs to 8 bits. Timing is wall-clock per
image, summed, divided by the megapixels processed; `threads` is the torch thread count (CBM3D
and NLM run in their own libraries).
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
from vitrestore.ops.camera import CameraNoise

STRENGTHS = {"low": 1e-3, "mid": 3e-3, "high": 1e-2}  # camera shot noise per strength
CAMERA_JPEG_QUALITY = 90


def add_noise(clean: np.ndarray, noise: str, level, seed: int) -> np.ndarray:
    """(H, W, 3) float clean -> float noisy, before any file is made (unclipped)."""
    if noise == "gaussian":
        return clean + np.random.default_rng(seed).normal(0, level / 255, clean.shape).astype(np.float32)
    shot = STRENGTHS[level]
    op = CameraNoise(shot_min=shot, shot_max=shot, shrink_prob=0.0)
    x = torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None]
    y = op.apply(x, op.sample(torch.Generator().manual_seed(seed), tuple(x.shape)))
    return y[0].permute(1, 2, 0).numpy()


def as_file(noisy: np.ndarray, noise: str, folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Write the noisy image as the file a user would have; (uint8 as read back, float of it)."""
    u8 = (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)
    path = folder / (name + (".jpg" if noise == "camera" else ".png"))
    params = [cv2.IMWRITE_JPEG_QUALITY, CAMERA_JPEG_QUALITY] if noise == "camera" else []
    cv2.imwrite(str(path), np.ascontiguousarray(u8[:, :, ::-1]), params)
    back = read_image(path).pixels  # (H, W, 3) uint8, the CLI's reader
    return back, back.astype(np.float32) / 255


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float [0, 1] -> (1, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None]


def nlm(noisy: np.ndarray, h: tuple[float, float]) -> np.ndarray:
    """OpenCV colour NLM with (h luminance, h colour) on the clipped 8-bit image."""
    u8 = (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)[:, :, ::-1]
    out = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(u8), None, h[0], h[1], 7, 21)
    return out[:, :, ::-1].astype(np.float32) / 255


def tune_nlm(paths: list[Path], noise: str, level, count: int = 4) -> tuple[float, float]:
    """The (h, h_colour) grid point with the best mean PSNR on a few training images."""
    imgs, sigma = [], 0.0
    for i, p in enumerate(paths[:count]):
        clean = read_rgb_uint8(p).permute(1, 2, 0).numpy().astype(np.float32) / 255
        clean = clean[:192, :192]
        noisy = np.clip(add_noise(clean, noise, level, 1000 + i), 0, 1)
        sigma += float(np.std(noisy - clean)) * 255 / count
        imgs.append((clean, noisy))
    best, best_h = -1.0, (sigma, sigma)
    grid = [(f * sigma, f * sigma * c) for f in (0.4, 0.55, 0.7, 0.85, 1.0, 1.2) for c in (0.5, 1.0, 1.5)]
    for h in grid:
        score = np.mean([psnr(to_tensor(nlm(n, h)), to_tensor(c)) for c, n in imgs])
        if score > best:
            best, best_h = score, h
    return best_h


def markdown_table(results: list[dict], methods: list[str]) -> str:
    """PSNR / SSIM per (set, sigma) and method, and each method's mean s/MP, as a Markdown table."""
    head = "| set | noise | images | " + " | ".join(methods) + " |"
    lines = [head, "|" + "---|" * (3 + len(methods))]
    keys = list(dict.fromkeys((r["set"], r["noise"], r["images"]) for r in results))
    for key in keys:
        cells = []
        for m in methods:
            r = next(x for x in results if (x["set"], x["noise"], x["images"]) == key and x["method"] == m)
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.4f}")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    speed = []
    for m in methods:
        rs = [r["sec_per_mp"] for r in results if r["method"] == m]
        speed.append("-" if m == "noisy" else f"{sum(rs) / len(rs):.2f}")
    lines.append("| **s / MP** | | | " + " | ".join(speed) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", type=Path, help="folders of clean images")
    ap.add_argument("--protocol", choices=("file", "paper"), default="file")
    ap.add_argument("--noise", choices=("gaussian", "camera"), default="gaussian")
    ap.add_argument("--sigmas", nargs="+", type=float, default=[15, 25, 50], help="gaussian levels (0-255)")
    ap.add_argument("--strengths", nargs="+", choices=tuple(STRENGTHS), default=list(STRENGTHS),
                    help="camera noise strengths")
    ap.add_argument("--model", default="denoise", help="shipped model name or weights file")
    ap.add_argument("--baseline", default="denoise",
                    help="method 'baseline' runs this model (default: the shipped one), same ensemble as --model")
    ap.add_argument("--limit", type=int, default=0, help="first N images of each set (0 = all)")
    ap.add_argument("--methods", default="noisy,nlm,cbm3d,vitrestore,vitrestore-sigma")
    ap.add_argument("--tune-on", type=Path, help="clean training images for tuning NLM's h")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--ensemble", type=int, default=1, help="test-time flips/rotations averaged (1, 2, 4, 8)")
    ap.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                    help="vitrestore's backend; methods vitrestore-torch / vitrestore-bf16 run the same model "
                         "on PyTorch in fp32 / bf16 autocast in the same run")
    ap.add_argument("--json", type=Path, help="write results here")
    ap.add_argument("--save-dir", type=Path, help="save vitrestore / CBM3D outputs of the first image per set here")
    args = ap.parse_args()
    methods = args.methods.split(",")
    if args.protocol == "paper" and args.noise != "gaussian":
        raise SystemExit("the paper protocol is Gaussian noise only (use --protocol file for camera noise)")
    if args.noise == "camera" and "vitrestore-sigma" in methods:
        methods.remove("vitrestore-sigma")  # --sigma describes white Gaussian noise only

    from vitrestore.tasks import load_model

    run = dict(device="cpu", tile=args.tile, backend=args.backend)
    model = load_model(args.model, ensemble=args.ensemble, **run)
    model_x2 = load_model(args.model, ensemble=2, **run) if "vitrestore-x2" in methods else None
    pinned = {m: load_model(args.model, device="cpu", tile=args.tile, ensemble=args.ensemble, backend="torch",
                            precision=p)  # the same weights on PyTorch at a fixed precision
              for m, p in (("vitrestore-torch", "fp32"), ("vitrestore-bf16", "bf16")) if m in methods}
    baseline = load_model(args.baseline, ensemble=args.ensemble, **run) if "baseline" in methods else None
    if "cbm3d" in methods:
        try:
            import bm3d  # noqa: F401
        except ImportError:
            print("notice: CBM3D skipped: install the optional extra (pip install 'vitrestore[bench]')")
            methods.remove("cbm3d")
    tune_paths = list_images(args.tune_on) if args.tune_on else []
    levels = args.sigmas if args.noise == "gaussian" else args.strengths
    results = []
    files = tempfile.TemporaryDirectory(prefix="bench_denoise_")
    print(f"torch threads: {torch.get_num_threads()}; protocol {args.protocol}; noise {args.noise}; "
          f"vitrestore backend {model.backend}")
    print(f"{'set':<12}{'noise':>12}  {'method':<18}{'PSNR':>8}{'SSIM':>8}{'s/MP':>9}  images")
    for folder in args.sets:
        paths = list_images(folder)[: args.limit or None]
        for level in levels:
            label = f"sigma {level:g}" if args.noise == "gaussian" else f"camera {level}"
            h = tune_nlm(tune_paths, args.noise, level) if (tune_paths and "nlm" in methods) else None
            acc = {m: {"psnr": [], "ssim": [], "sec": 0.0} for m in methods}
            mp = 0.0
            for i, p in enumerate(paths):
                clean = read_rgb_uint8(p).permute(1, 2, 0).numpy().astype(np.float32) / 255
                noisy = add_noise(clean, args.noise, level, i)
                noisy_u8 = None
                if args.protocol == "file":
                    noisy_u8, noisy = as_file(noisy, args.noise, Path(files.name), f"{folder.name}_{i}")
                true_sigma = float(np.std(noisy - clean)) * 255 if args.noise == "camera" else level
                mp += clean.shape[0] * clean.shape[1] / 1e6
                ct = to_tensor(clean)
                for m in methods:
                    t0 = time.perf_counter()
                    if m == "noisy":
                        out = to_tensor(noisy)
                    elif m == "nlm":
                        out = to_tensor(nlm(noisy, h or (0.7 * true_sigma, 0.7 * true_sigma)))
                    elif m == "cbm3d":
                        import bm3d as _b

                        out = to_tensor(np.asarray(_b.bm3d_rgb(noisy, true_sigma / 255), dtype=np.float32))
                    elif m in ("vitrestore", "vitrestore-sigma", "vitrestore-x2", "vitrestore-torch", "vitrestore-bf16",
                               "baseline"):
                        net = {"vitrestore-x2": model_x2, "baseline": baseline, **pinned}.get(m, model)
                        request = {"sigma": level} if m == "vitrestore-sigma" else {}
                        if noisy_u8 is not None:  # the file's uint8 pixels, as the CLI hands them over
                            out = to_tensor(net(noisy_u8, **request).astype(np.float32) / 255)
                        else:
                            out = net.run_tensor(to_tensor(noisy), **request)
                    else:
                        raise SystemExit(f"unknown method {m}")
                    acc[m]["sec"] += time.perf_counter() - t0
                    acc[m]["psnr"].append(psnr(out, ct))
                    acc[m]["ssim"].append(ssim(out, ct))
                    if args.save_dir and i == 0:
                        args.save_dir.mkdir(parents=True, exist_ok=True)
                        u8 = (out[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1]
                        cv2.imwrite(str(args.save_dir / f"{folder.name}_{label.replace(' ', '')}_{m}.png"), u8)
            for m in methods:
                a = acc[m]
                row = {"set": folder.name, "noise": label, "protocol": args.protocol, "method": m,
                       "images": len(paths), "psnr": float(np.mean(a["psnr"])), "ssim": float(np.mean(a["ssim"])),
                       "sec_per_mp": a["sec"] / mp if m != "noisy" else 0.0}
                if args.noise == "gaussian":
                    row["sigma"] = level
                if m == "nlm" and h:
                    row["h"], row["h_colour"] = h
                results.append(row)
                print(f"{folder.name:<12}{label:>12}  {m:<18}{row['psnr']:>8.2f}{row['ssim']:>8.4f}"
                      f"{row['sec_per_mp']:>9.2f}  {len(paths)}", flush=True)
    files.cleanup()
    card_lines = [f"{r['set']} {r['noise']}, {args.protocol} protocol ({r['images']} images): PSNR {r['psnr']:.2f} dB, "
                  f"SSIM {r['ssim']:.4f}, {r['sec_per_mp']:.2f} s/MP (CPU, {torch.get_num_threads()} threads)"
                  + ("" if r["method"] == "vitrestore" else f" [{r['method']}]")
                  for r in results if r["method"].startswith("vitrestore")]
    print()
    print(markdown_table(results, methods))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "card_lines": card_lines, "protocol": args.protocol,
                                         "noise": args.noise, "threads": torch.get_num_threads(),
                                         "backend": model.backend}, indent=1))


if __name__ == "__main__":
    main()
