"""Inpainting benchmark: PSNR/SSIM over the whole image and inside the hole, and seconds per
megapixel, for OpenCV Telea, OpenCV Navier-Stokes and vitrestore, on the same images and the
same seeded masks in one run; `--methods telea,ns,mean,smooth,vitrestore` adds the mean of the
two OpenCV fills (vitrestore's pre-fill, before its network) and vitrestore without its texture
step (`texture=False`: the network's own fill), to show what each stage adds.

    python benchmarks/bench_inpaint.py ../shared/data/Kodak24 ../shared/data/CBSD68 \
        --methods telea,ns,mean,smooth,vitrestore --json bench_out/inpaint.json \
        --gallery docs/inpaint_gallery.png          # --model runs/x/weights.safetensors: not the shipped one

Mask sets (vitrestore/ops/masks.py, one mask per image, seed = set offset + image index, so every
method and every run sees the same holes):

    thin    Strokes(1, 5, 0.01, 0.03)   free-form brush strokes 1-3% of the shorter side wide
    thick   Strokes(1, 4, 0.04, 0.10)   strokes 4-10% of the shorter side wide
    large   Large(0.32, 0.42)           LaMa-style very thick strokes and boxes, about 40% of the image

Protocol: clean 8-bit RGB image x and binary mask m (1 = hole). Every method gets the image with
its hole set to 0 and the mask; OpenCV methods run `cv2.inpaint(bgr, mask, --radius, flag)`
(INPAINT_TELEA, INPAINT_NS); vitrestore runs through `load_model(...).run_arrays`, the code
path of `vitrestore inpaint` (same tiling, coarse-to-fine passes `Task.passes`, exact composite of
known pixels), with `--ensemble` 1 as the CLI default. Outputs are 8-bit.

Metrics (RGB, no border crop; per image, then averaged over the images):
    PSNR / SSIM        over the whole image (metrics.psnr / metrics.ssim; known pixels are exact
                       for every method, so these reward the fill diluted by the known area)
    hole PSNR          10 log10(255^2 / MSE) with the MSE over hole pixels only (all 3 channels)
    hole SSIM          the SSIM map (11x11 Gaussian window, 'valid'), averaged over the channels,
                       then over the window centres that are hole pixels
    hole detail        mean |Laplacian| (3x3, per channel) over hole pixels, the fill's divided by
                       the original's: how much fine detail the fill has (1 = as much as the
                       photo had there; a smooth blend scores well below 1). It measures the
                       amount of texture, not its correctness: read it beside PSNR and the gallery
Timing is wall-clock per image (the method's call only, not metrics), summed, divided by the
megapixels processed; `threads` is the torch thread count (OpenCV uses its own).
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
from vitrestore.metrics import psnr, ssim, ssim_map
from vitrestore.ops.masks import Large, Strokes

MASK_SETS = {  # name -> (generator, seed offset)
    "thin": (Strokes(1, 5, 0.01, 0.03), 0),
    "thick": (Strokes(1, 4, 0.04, 0.10), 10_000),
    "large": (Large(0.32, 0.42), 20_000),
}
LABELS = {"telea": "OpenCV Telea", "ns": "OpenCV Navier-Stokes", "mean": "mean of both (pre-fill)",
          "smooth": "vitrestore without texture", "vitrestore": "vitrestore"}
MODEL_METHODS = ("smooth", "vitrestore")


def make_mask(kind: str, index: int, h: int, w: int) -> np.ndarray:
    """(H, W) bool hole mask of set `kind` for image number `index` (fixed seed)."""
    gen, offset = MASK_SETS[kind]
    m = gen(h, w, torch.Generator().manual_seed(offset + index)) > 0.5
    if not m.any():
        m[h // 2, w // 2] = True
    return m


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255


def hole_psnr(out: np.ndarray, clean: np.ndarray, hole: np.ndarray) -> float:
    d = out[hole].astype(np.float64) - clean[hole].astype(np.float64)
    return float(10 * np.log10(255.0**2 / max((d * d).mean(), 1e-10)))


def hole_ssim(out: np.ndarray, clean: np.ndarray, hole: np.ndarray) -> float:
    """SSIM map (window 11, 'valid': 5 px smaller on each side) averaged over hole centres."""
    smap, _ = ssim_map(to_tensor(out).double(), to_tensor(clean).double())
    inner = torch.from_numpy(hole[5:-5, 5:-5])
    if not inner.any():
        return float("nan")
    return float(smap[0].mean(0)[inner].mean())


def hole_detail(out: np.ndarray, clean: np.ndarray, hole: np.ndarray) -> float:
    """mean |Laplacian| over the hole, the fill's / the original's (1 = as much fine detail)."""
    def lap(a: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(a.astype(np.float32), cv2.CV_32F))[hole].mean())

    return lap(out) / max(lap(clean), 1e-6)


def run_method(method: str, holed: np.ndarray, hole: np.ndarray, model, radius: float) -> np.ndarray:
    """(H, W, 3) uint8 RGB with hole = 0 -> filled (H, W, 3) uint8 RGB."""
    if method in ("telea", "ns"):
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        bgr = np.ascontiguousarray(holed[:, :, ::-1])
        return cv2.inpaint(bgr, hole.astype(np.uint8) * 255, radius, flag)[:, :, ::-1]
    if method == "mean":  # the task's own pre-fill, rounded to 8 bits
        from vitrestore.tasks.inpaint import Inpaint

        task = Inpaint({"prefill": "telea+navier-stokes", "prefill_radius": radius})
        mask = torch.from_numpy(hole.astype(np.float32))[None, None]  # (1, 1, H, W)
        filled = task.prefill(to_tensor(holed), mask)[0]  # (3, H, W) in [0, 1]
        return (filled * 255).round().byte().permute(1, 2, 0).numpy()
    if method in MODEL_METHODS:
        mask = torch.from_numpy(hole.astype(np.float32))[None, None]
        return model.run_arrays([holed], mask=mask, texture=method == "vitrestore")[0]
    raise SystemExit(f"unknown method {method}")


def markdown_table(results: list[dict], methods: list[str]) -> str:
    """Rows per (set, masks): whole-image PSNR / SSIM, hole PSNR / SSIM and hole detail per
    method; s/MP."""
    head = ("| set | masks | hole % | " + " | ".join(f"{LABELS.get(m, m)} PSNR / SSIM" for m in methods)
            + " | " + " | ".join(f"{LABELS.get(m, m)} hole PSNR / SSIM" for m in methods)
            + " | " + " | ".join(f"{LABELS.get(m, m)} hole detail" for m in methods) + " |")
    lines = [head, "|" + "---|" * (3 + 3 * len(methods))]
    keys = sorted({(r["set"], r["masks"]) for r in results}, key=lambda k: (k[0], list(MASK_SETS).index(k[1])))
    for key in keys:
        rs = {r["method"]: r for r in results if (r["set"], r["masks"]) == key}
        first = next(iter(rs.values()))
        whole = [f"{rs[m]['psnr']:.2f} / {rs[m]['ssim']:.4f}" for m in methods]
        inner = [f"{rs[m]['hole_psnr']:.2f} / {rs[m]['hole_ssim']:.4f}" for m in methods]
        detail = [f"{rs[m]['hole_detail']:.2f}" for m in methods]
        lines.append(f"| {key[0]} ({first['images']}) | {key[1]} | {100 * first['hole_fraction']:.1f} | "
                     + " | ".join(whole + inner + detail) + " |")
    speed = []
    for m in methods:
        secs = sum(r["seconds"] for r in results if r["method"] == m)
        mps = sum(r["megapixels"] for r in results if r["method"] == m)
        speed.append(f"{secs / mps:.2f} s/MP")
    lines.append("| **speed** | | | " + " | ".join(speed) + " |" + " |" * (2 * len(methods)))
    return "\n".join(lines)


def gallery(rows: list[list[np.ndarray]], width: int) -> np.ndarray:
    """Rows of same-size RGB panels -> one RGB image, each panel resized to `width`, 4 px gaps."""
    out_rows = []
    for panels in rows:
        h, w = panels[0].shape[:2]
        size = (width, round(h * width / w))
        small = [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in panels]
        gap = np.full((size[1], 4, 3), 255, np.uint8)
        out_rows.append(np.concatenate(sum(([s, gap] for s in small), [])[:-1], 1))
    full_w = max(r.shape[1] for r in out_rows)
    padded = [np.pad(r, ((0, 4), (0, full_w - r.shape[1]), (0, 0)), constant_values=255) for r in out_rows]
    return np.concatenate(padded, 0)[:-4]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+", type=Path, help="folders of clean images")
    ap.add_argument("--masks", default="thin,thick,large", help="mask sets: " + ",".join(MASK_SETS))
    ap.add_argument("--methods", default="telea,ns,vitrestore")
    ap.add_argument("--model", default="inpaint", help="shipped model name or weights file")
    ap.add_argument("--limit", type=int, default=0, help="first N images of each set (0 = all)")
    ap.add_argument("--radius", type=float, default=3.0, help="cv2.inpaint inpaintRadius (OpenCV's usual 3)")
    ap.add_argument("--tile", type=int, default=512, help="as the CLI's --tile (images up to 1024 px run whole)")
    ap.add_argument("--ensemble", type=int, default=1, help="as the CLI's --ensemble")
    ap.add_argument("--json", type=Path, help="write results here")
    ap.add_argument("--gallery", type=Path, help="write a PNG: masked input | methods | original")
    ap.add_argument("--gallery-masks", default="large", help="mask set shown in the gallery")
    ap.add_argument("--gallery-images", default="kodim03,kodim07,kodim20,kodim23",
                    help="file stems shown in the gallery (those found among the benchmarked images)")
    ap.add_argument("--gallery-width", type=int, default=300, help="panel width in the gallery (px)")
    args = ap.parse_args()
    methods, kinds = args.methods.split(","), args.masks.split(",")
    for k in kinds:
        if k not in MASK_SETS:
            raise SystemExit(f"unknown mask set {k} (known: {', '.join(MASK_SETS)})")

    model = None
    if any(m in MODEL_METHODS for m in methods):
        from vitrestore.tasks import load_model

        model = load_model(args.model, device="cpu", tile=args.tile, ensemble=args.ensemble)
    shown = {s: None for s in args.gallery_images.split(",") if s}
    results = []
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'set':<10}{'masks':<7}{'hole%':>6}  {'method':<12}{'PSNR':>7}{'SSIM':>8}{'hPSNR':>8}{'hSSIM':>8}"
          f"{'hDet':>6}{'s/MP':>8}  images")
    for folder in args.sets:
        paths = list_images(folder)[: args.limit or None]
        for kind in kinds:
            acc = {m: {"psnr": [], "ssim": [], "hole_psnr": [], "hole_ssim": [], "hole_detail": [], "sec": 0.0}
                   for m in methods}
            mp, fractions = 0.0, []
            for i, p in enumerate(paths):
                clean = read_rgb_uint8(p).permute(1, 2, 0).numpy()  # (H, W, 3) uint8
                h, w = clean.shape[:2]
                hole = make_mask(kind, i, h, w)
                holed = clean.copy()
                holed[hole] = 0
                fractions.append(float(hole.mean()))
                mp += h * w / 1e6
                ct = to_tensor(clean)
                outs = {}
                for m in methods:
                    t0 = time.perf_counter()
                    out = run_method(m, holed, hole, model, args.radius)
                    acc[m]["sec"] += time.perf_counter() - t0
                    assert np.array_equal(out[~hole], clean[~hole]), f"{m} changed known pixels"
                    ot = to_tensor(out)
                    acc[m]["psnr"].append(psnr(ot, ct))
                    acc[m]["ssim"].append(ssim(ot, ct))
                    acc[m]["hole_psnr"].append(hole_psnr(out, clean, hole))
                    acc[m]["hole_ssim"].append(hole_ssim(out, clean, hole))
                    acc[m]["hole_detail"].append(hole_detail(out, clean, hole))
                    outs[m] = out
                if kind == args.gallery_masks and p.stem in shown and shown[p.stem] is None:
                    show = clean.copy()
                    show[hole] = (255, 0, 255)
                    shown[p.stem] = [show] + [outs[m] for m in methods] + [clean]
            for m in methods:
                a = acc[m]
                row = {"set": folder.name, "masks": kind, "method": m, "images": len(paths),
                       "hole_fraction": float(np.mean(fractions)),
                       "psnr": float(np.mean(a["psnr"])), "ssim": float(np.mean(a["ssim"])),
                       "hole_psnr": float(np.mean(a["hole_psnr"])), "hole_ssim": float(np.nanmean(a["hole_ssim"])),
                       "hole_detail": float(np.mean(a["hole_detail"])),
                       "seconds": a["sec"], "megapixels": mp, "sec_per_mp": a["sec"] / mp}
                results.append(row)
                print(f"{folder.name:<10}{kind:<7}{100 * row['hole_fraction']:>6.1f}  {m:<12}{row['psnr']:>7.2f}"
                      f"{row['ssim']:>8.4f}{row['hole_psnr']:>8.2f}{row['hole_ssim']:>8.4f}{row['hole_detail']:>6.2f}"
                      f"{row['sec_per_mp']:>8.2f}"
                      f"  {len(paths)}", flush=True)
    threads = torch.get_num_threads()
    card_lines = []
    for r in results:
        if r["method"] != "vitrestore":
            continue
        peers = {x["method"]: x for x in results if (x["set"], x["masks"]) == (r["set"], r["masks"])}
        vs = "; ".join(f"{LABELS.get(m, m)} {x['psnr']:.2f} / hole {x['hole_psnr']:.2f} / detail "
                       f"{x['hole_detail']:.2f}" for m, x in peers.items() if m != "vitrestore")
        card_lines.append(f"{r['set']} {r['masks']} masks ({100 * r['hole_fraction']:.0f}% hole, {r['images']} images): "
                          f"PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, in the hole {r['hole_psnr']:.2f} dB / "
                          f"{r['hole_ssim']:.4f}, hole detail {r['hole_detail']:.2f}; {r['sec_per_mp']:.2f} s/MP "
                          f"(CPU, {threads} threads)"
                          + (f" [vs {vs}]" if vs else ""))
    print()
    print(markdown_table(results, methods))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "card_lines": card_lines, "threads": threads,
                                         "masks": {k: repr(MASK_SETS[k][0]) for k in kinds},
                                         "radius": args.radius, "model": str(args.model)}, indent=1))
    rows = [v for v in shown.values() if v is not None]
    if args.gallery and rows:
        args.gallery.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.gallery), gallery(rows, args.gallery_width)[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"gallery: {args.gallery} ({len(rows)} rows: masked input | "
              + " | ".join(LABELS.get(m, m) for m in methods) + " | original)")


if __name__ == "__main__":
    main()
