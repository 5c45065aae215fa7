"""Style transfer benchmark: content kept vs style matched, for vitrestore and classical baselines.

    python benchmarks/bench_stylize.py ../shared/data/content_photos \
        --style starry-night=../shared/data/style_pd/starry_night.jpg \
        --style great-wave=../shared/data/style_pd/wave.jpg \
        --style the-scream=../shared/data/style_pd/the_scream.jpg \
        --json bench_out/stylize.json --gallery docs/stylize_gallery.png

Methods: Reinhard colour transfer (Lab mean/std), per-channel histogram matching (RGB),
OpenCV `stylization` (edge-preserving painterly filter, style-agnostic) and vitrestore (the
shipped `style-<name>` model, or `--weights name=PATH`). Content images must be photos the
models never trained on (the shipped styles trained on CBSD432).

Metrics, no pretrained network:
- content: SSIM between the luminance edge maps (Sobel of a sigma-1 smoothed luminance, each
  scaled by its own 99th percentile) of the photo and the output; 1 = structure kept. Also
  at object scale: the same after a 4x area downscale of both, where texture finer than ~4 px
  (brush strokes) hardly counts and outlines still do; at full size any texture added to a
  flat sky costs a lot, since the photo has no edges there.
- style distance: sliced Wasserstein distance between the distributions of 7x7 RGB patches of
  the output and of the painting, at 3 levels of a 2x pyramid (128 random directions, 4096
  patches per level, fixed seed); lower = nearer the painting. (vitrestore trains with SWD
  losses on colours and on 7x7 patches of band-pass detail at 3 levels: related, not the same
  statistic.)
Images are processed at their size, capped to 512 px on the long side (all methods alike).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vitrestore.data import list_images
from vitrestore.metrics import edge_ssim, patch_swd

MAX_SIDE = 512


def read_rgb(path: Path, max_side: int = MAX_SIDE) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"{path}: cannot read")
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s < 1:
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:, :, ::-1])


def reinhard(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Reinhard et al. 2001: match the mean and std of each Lab channel (OpenCV's 8-bit Lab)."""
    c = cv2.cvtColor(content, cv2.COLOR_RGB2LAB).astype(np.float32)
    s = cv2.cvtColor(style, cv2.COLOR_RGB2LAB).astype(np.float32)
    out = (c - c.mean((0, 1))) / (c.std((0, 1)) + 1e-6) * s.std((0, 1)) + s.mean((0, 1))
    return cv2.cvtColor(np.clip(out, 0, 255).round().astype(np.uint8), cv2.COLOR_LAB2RGB)


def histogram_match(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching: each content level mapped to the style's same quantile."""
    out = np.empty_like(content)
    for ch in range(3):
        c_hist = np.bincount(content[:, :, ch].ravel(), minlength=256).cumsum() / content[:, :, ch].size
        s_hist = np.bincount(style[:, :, ch].ravel(), minlength=256).cumsum() / style[:, :, ch].size
        lut = np.searchsorted(s_hist, c_hist).clip(0, 255).astype(np.uint8)
        out[:, :, ch] = lut[content[:, :, ch]]
    return out


def cv_stylization(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """OpenCV's painterly edge-preserving filter (it does not look at the painting)."""
    return cv2.stylization(content[:, :, ::-1].copy(), sigma_s=60, sigma_r=0.45)[:, :, ::-1].copy()


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("content", type=Path, help="folder of content photos")
    ap.add_argument("--style", action="append", required=True, metavar="NAME=PAINTING")
    ap.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                    help="vitrestore weights for a style instead of the shipped style-NAME")
    ap.add_argument("--methods", default="reinhard,histogram,cv-stylization,vitrestore")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--gallery", type=Path, help="PNG: content | painting | each method, the first photo per style, whole and a 1:1 crop")
    args = ap.parse_args()
    from vitrestore.tasks import load_model

    styles = dict(s.split("=", 1) for s in args.style)
    weights = dict(w.split("=", 1) for w in args.weights)
    methods = args.methods.split(",")
    photos = list_images(args.content)[: args.limit or None]
    classic = {"reinhard": reinhard, "histogram": histogram_match, "cv-stylization": cv_stylization}
    rows, card_lines, gallery_rows = [], [], []
    for name, painting_path in styles.items():
        painting = read_rgb(Path(painting_path), 1024)
        p_t = as_tensor(painting)
        model = load_model(weights.get(name, f"style-{name}"), device="cpu", tile=512) if "vitrestore" in methods else None
        for method in methods:
            edge, edge4, dist, secs, mp = [], [], [], 0.0, 0.0
            for i, path in enumerate(photos):
                content = read_rgb(path)
                t0 = time.perf_counter()
                out = model.run_arrays([content])[0] if method == "vitrestore" else classic[method](content, painting)
                secs += time.perf_counter() - t0
                mp += content.shape[0] * content.shape[1] / 1e6
                c_t, o_t = as_tensor(content), as_tensor(out)
                edge.append(edge_ssim(o_t, c_t))
                edge4.append(edge_ssim(F.avg_pool2d(o_t, 4), F.avg_pool2d(c_t, 4)))
                dist.append(patch_swd(o_t, p_t))
                if args.gallery and i == 0:
                    gallery_rows.append((name, i, method, content, painting, out))
            row = {"style": name, "method": method, "images": len(photos), "content_edge_ssim": float(np.mean(edge)),
                   "content_edge_ssim_quarter": float(np.mean(edge4)), "style_swd": float(np.mean(dist)), "s_per_mp": secs / mp}
            rows.append(row)
            print(f"{name:14s} {method:15s} content {row['content_edge_ssim']:.3f} "
                  f"(1/4: {row['content_edge_ssim_quarter']:.3f})  style SWD "
                  f"{row['style_swd']:.4f}  {row['s_per_mp']:.3f} s/MP", flush=True)
        # the photos' own distance to the painting, for reference
        d0 = float(np.mean([patch_swd(as_tensor(read_rgb(p)), p_t) for p in photos]))
        rows.append({"style": name, "method": "photo (unchanged)", "images": len(photos), "content_edge_ssim": 1.0,
                     "content_edge_ssim_quarter": 1.0, "style_swd": d0, "s_per_mp": 0.0})
        print(f"{name:14s} {'photo':15s} content 1.000  style SWD {d0:.4f}", flush=True)
        mine = [r for r in rows if r["style"] == name and r["method"] == "vitrestore"]
        if mine:
            r = mine[0]
            card_lines.append(f"{name}: content_photos ({r['images']} photos, <= {MAX_SIDE} px): content edge-SSIM "
                              f"{r['content_edge_ssim']:.3f} (at 1/4 size {r['content_edge_ssim_quarter']:.3f}), "
                              f"style SWD {r['style_swd']:.4f} (photo {d0:.4f}), "
                              f"{r['s_per_mp']:.2f} s/MP (benchmarks/bench_stylize.py); content / 1/4 / style: "
                              + "; ".join(f"{o['method']} {o['content_edge_ssim']:.3f} / "
                                          f"{o['content_edge_ssim_quarter']:.3f} / {o['style_swd']:.4f}"
                                          for o in rows if o["style"] == name and o["method"] in classic))

    print("\n| style | method | content edge-SSIM | at 1/4 size | style SWD (lower = nearer) | s / MP |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['style']} | {r['method']} | {r['content_edge_ssim']:.3f} | {r['content_edge_ssim_quarter']:.3f} "
              f"| {r['style_swd']:.4f} | {r['s_per_mp']:.3f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "card_lines": card_lines}, indent=1))
    if args.gallery and gallery_rows:
        save_gallery(args.gallery, gallery_rows, methods)


def save_gallery(path: Path, items, methods, cell: int = 240) -> None:
    """Per style, a row of content | painting | each method's output (the first photo, fitted
    to cell x cell px, labelled) and a row of 1:1 centre crops of the same, where texture can
    be judged."""
    def fit(img):
        h, w = img.shape[:2]
        s = cell / max(h, w)
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        canvas = np.full((cell, cell, 3), 255, np.uint8)
        y, x = (cell - small.shape[0]) // 2, (cell - small.shape[1]) // 2
        canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        return canvas

    def zoom(img):
        h, w = img.shape[:2]
        y, x = max(0, (h - cell) // 2), max(0, (w - cell) // 2)
        piece = img[y : y + cell, x : x + cell]
        canvas = np.full((cell, cell, 3), 255, np.uint8)
        canvas[: piece.shape[0], : piece.shape[1]] = piece
        return canvas

    grouped: dict[tuple, dict] = {}
    for name, i, method, content, painting, out in items:
        g = grouped.setdefault((name, i), {"content": content, "painting": painting})
        g[method] = out
    cols = ["content", "painting", *methods]
    header = np.full((24, cell * len(cols), 3), 255, np.uint8)
    for j, c in enumerate(cols):
        cv2.putText(header, c, (j * cell + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    rows = [header]
    for g in grouped.values():
        rows.append(np.concatenate([fit(g[c]) for c in cols], 1))
        rows.append(np.concatenate([zoom(g[c]) for c in cols], 1))
    grid = np.concatenate(rows, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid[:, :, ::-1].copy(), [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":
    main()
