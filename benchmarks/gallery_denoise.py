"""Real noisy photos side by side: input | OpenCV NLM | vitrestore (one or more models), one row
per photo, each a centre crop at 1:1 (or `--at NAME=Y,X`). The models see the whole photo
through the same reader and model call as the CLI (8-bit file in, 8-bit out). RNI15 has no
clean originals: this is for looking, not scoring.

    python benchmarks/gallery_denoise.py ../shared/data/RNI15 docs/denoise_rni15.png \
        --models shipped=denoise --models new=runs/denoise-real/weights.safetensors --crop 200

NLM's strength is set per photo from a noise estimate (the median absolute deviation of the
finest wavelet-like detail, the usual blind estimate), h = 0.8 x that sigma, as a user would
set it by eye.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from gallery_grid import label, side_by_side, write_grid
from vitrestore.data import list_images
from vitrestore.io.images import read_image


def noise_sigma(rgb: np.ndarray) -> float:
    """Blind noise estimate (0-255): MAD of the diagonal pixel differences of the luma / 0.6745."""
    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    d = (y[1:, 1:] - y[:-1, :-1]) / 2  # a diagonal high-pass whose noise std equals the pixels'/sqrt(2)
    return float(np.median(np.abs(d - np.median(d))) / 0.6745 * np.sqrt(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", action="append", default=[], metavar="LABEL=NAME_OR_PATH")
    ap.add_argument("--photos", nargs="*", help="file names in the folder (default: all)")
    ap.add_argument("--at", action="append", default=[], metavar="PHOTO=Y,X", help="top-left of the crop")
    ap.add_argument("--crop", type=int, default=200)
    ap.add_argument("--gap", type=int, default=4)
    args = ap.parse_args()
    from vitrestore.tasks import load_model

    models = [(m.split("=", 1)[0], load_model(m.split("=", 1)[1], device="cpu", tile=512)) for m in args.models]
    at = {a.split("=")[0]: tuple(int(v) for v in a.split("=")[1].split(",")) for a in args.at}
    paths = [args.folder / p for p in args.photos] if args.photos else list_images(args.folder)
    c, gap = args.crop, args.gap
    names = ["input", "OpenCV NLM"] + [f"vitrestore {n}" for n, _ in models]
    rows = []
    for path in paths:
        rgb = read_image(path).pixels[:, :, :3]  # (H, W, 3) uint8, as the CLI reads it
        h, w = rgb.shape[:2]
        sigma = noise_sigma(rgb)
        y, x = at.get(path.name, ((h - min(c, h)) // 2, (w - min(c, w)) // 2))
        ch, cw = min(c, h - y), min(c, w - x)
        hh = max(1.0, 0.8 * sigma)
        nlm = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(rgb[:, :, ::-1]), None, hh, hh, 7, 21)[:, :, ::-1]
        outs = [rgb, nlm] + [m(rgb) for _, m in models]
        row = side_by_side([o[y: y + ch, x: x + cw] for o in outs], gap)
        rows.append(label(row.shape[1], f"{path.name}  ({w}x{h}, crop at x={x}, y={y}; noise estimate {sigma:.1f})"))
        rows.append(row)
        print(f"{path.name}: {w}x{h}, noise estimate {sigma:.1f}", flush=True)
    write_grid(args.out, rows, names, c, gap)


if __name__ == "__main__":
    main()
