"""Side-by-side x4 gallery of real photos: input enlarged with nearest-neighbour | bicubic |
classic model | real-world model (and any further models), one row per photo.

    python benchmarks/gallery_sr.py ../shared/data/RealSRSet5 docs/upscale_real_gallery.png \
        --models classic=upscale-x4 --models real=upscale-x4-real \
        --photos Lincoln.png oldphoto2.png dog.png --crop 64

Each model sees the whole photo (full context); the row shows a `--crop` x `--crop` region of
the input (at the given y,x of the input, `NAME.png=y,x`, or the centre) and the same region of
every output, all at 4x. Labels go above the columns.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gallery_grid import label, side_by_side, write_grid
from vitrestore.data import read_rgb_uint8
from vitrestore.ops.resize import imresize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", action="append", default=[], metavar="LABEL=NAME_OR_PATH")
    ap.add_argument("--photos", nargs="+", required=True)
    ap.add_argument("--at", action="append", default=[], metavar="PHOTO=Y,X", help="top-left of the crop (input px)")
    ap.add_argument("--crop", type=int, default=64, help="crop side in input pixels (shown 4x)")
    ap.add_argument("--gap", type=int, default=4)
    args = ap.parse_args()
    from vitrestore.tasks import load_model

    s = 4
    models = [(m.split("=", 1)[0], load_model(m.split("=", 1)[1], device="cpu", tile=0)) for m in args.models]
    at = {a.split("=")[0]: tuple(int(v) for v in a.split("=")[1].split(",")) for a in args.at}
    c, gap = args.crop, args.gap
    names = ["input (nearest)", "bicubic"] + [f"vitrestore {n}" for n, _ in models]
    rows = []
    for photo in args.photos:
        lr = read_rgb_uint8(args.folder / photo)  # (3, H, W) uint8
        h, w = lr.shape[1:]
        y, x = at.get(photo, ((h - min(c, h)) // 2, (w - min(c, w)) // 2))
        ch, cw = min(c, h - y), min(c, w - x)
        x01 = lr[None].float() / 255
        outs = [x01.repeat_interleave(s, -2).repeat_interleave(s, -1),
                imresize(x01.double(), s).float()]
        outs += [m.run_tensor(x01) for _, m in models]
        tiles = []
        for o in outs:
            t = (o[0, :, s * y: s * (y + ch), s * x: s * (x + cw)].clamp(0, 1) * 255).round().to(torch.uint8)
            tiles.append(t.permute(1, 2, 0).numpy())
        row = side_by_side(tiles, gap)
        rows.append(label(row.shape[1], f"{photo}  (crop {cw}x{ch} at x={x}, y={y} of {w}x{h})"))
        rows.append(row)
        print(f"{photo}: {w}x{h}, crop at y={y} x={x}", flush=True)
    write_grid(args.out, rows, names, s * c, gap)


if __name__ == "__main__":
    main()
