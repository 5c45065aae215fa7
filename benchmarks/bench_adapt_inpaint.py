"""`inpaint --adapt` benchmark (issue 34): the shipped model against a copy adapted on each photo
(one adaptation per photo, on that photo with its own mask), on bench_inpaint.py's seeded masks.

    python benchmarks/bench_adapt_inpaint.py ../shared/data/Kodak24 --masks thick,thin --limit 8 \
        --steps 200 --json bench_out/adapt_inpaint.json
    python benchmarks/bench_adapt_inpaint.py ../shared/data/Kodak24 --masks thick --limit 1 --seconds 30
        # how many steps 30 s buys here (the run prints the adaptation's step count)

Per photo: the clean image, its mask (bench_inpaint.make_mask: same set, same seed), the holed
input (hole = 0). The shipped model runs as `vitrestore inpaint` does (`load_model(...).run_arrays`,
tile 512, ensemble 1, texture on by default); the adaptation is engine/adapt.py's, on the sample
the CLI pools from this one photo (`pooled_samples`, seed 0: a crop of at most 512 x 512 with
its mask), with a fixed step count (`--steps`, repeatable on a shared CPU) or a wall-time budget
(`--seconds`); the adapted model then runs the same call. PSNR as bench_inpaint.py measures it:
whole image and inside the hole (8-bit outputs, RGB). `--texture both` also reports the network's
own fill (texture=False), where the adaptation's change is not diluted by the exemplar step.
`--lr`, `--trains` override the objective's step size and trained parameters (for trials:
tune on CBSD432, not on Kodak24).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inpaint import hole_psnr, make_mask, to_tensor  # noqa: E402

from vitrestore.data import list_images, read_rgb_uint8  # noqa: E402
from vitrestore.engine.adapt import AdaptSettings, adapt, pooled_samples  # noqa: E402
from vitrestore.metrics import psnr  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="clean images")
    ap.add_argument("--masks", default="thick,thin", help="bench_inpaint.py mask sets, in order")
    ap.add_argument("--limit", type=int, default=0, help="first N images (0 = all)")
    ap.add_argument("--steps", type=int, default=None, help="fixed adaptation steps per photo")
    ap.add_argument("--seconds", type=float, default=30.0, help="wall-time budget per photo (when no --steps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--texture", choices=("on", "both"), default="on",
                    help="on: the CLI default only; both: also texture=False")
    ap.add_argument("--lr", type=float, default=None, help="override the objective's step size")
    ap.add_argument("--trains", choices=("all", "full-resolution"), default=None, help="override the trained parameters")
    ap.add_argument("--force", action="store_true",
                    help="also measure the adapted copy when the self-check rejects it: 'forced' columns; the "
                         "'adapted' columns stay what the CLI would use (the base model when the check rejects)")
    ap.add_argument("--model", default="inpaint")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vitrestore.tasks import inpaint_adapt, load_model
    from vitrestore.tasks.inpaint import Inpaint

    if args.lr is not None:
        Inpaint.adapt_lr = args.lr
    if args.trains is not None:
        inpaint_adapt.TRAINS = args.trains
    scores: list[float] = []
    if args.force:  # the loop keeps the copy; the real check is recorded and applied here
        real_score = Inpaint.adapt_score

        def recorded(self, prepared, net):
            scores.append(real_score(self, prepared, net))
            return scores[-1] if len(scores) % 2 else -1.0

        Inpaint.adapt_score = recorded
    model = load_model(args.model, device="cpu", tile=512, ensemble=1)
    settings = AdaptSettings(seconds=args.seconds, steps=args.steps, seed=args.seed)
    textures = [True] if args.texture == "on" else [True, False]
    paths = list_images(args.folder)[: args.limit or None]
    print(f"{args.folder.name}: {len(paths)} images, adapt {'%d steps' % args.steps if args.steps else '%g s' % args.seconds}"
          f", lr {Inpaint.adapt_lr:g}, trains {inpaint_adapt.TRAINS}, "
          f"threads {torch.get_num_threads()}", flush=True)
    rows = []
    for kind in args.masks.split(","):
        for i, p in enumerate(paths):
            clean = read_rgb_uint8(p).permute(1, 2, 0).numpy()
            h, w = clean.shape[:2]
            hole = make_mask(kind, i, h, w)
            holed = clean.copy()
            holed[hole] = 0
            mask = torch.from_numpy(hole.astype(np.float32))[None, None]
            pixels = torch.from_numpy(holed).permute(2, 0, 1)[None]  # as the CLI reads it: uint8
            samples = pooled_samples([p], lambda _: (pixels, {"mask": mask, "texture": True}), settings)
            t0 = time.perf_counter()
            adapted, res = adapt(model, samples, settings, quiet=True)
            secs = time.perf_counter() - t0
            forced = None
            if args.force:
                res.score_base, res.score_adapted = scores[-2], scores[-1]
                res.kept = res.score_adapted < res.score_base
                forced, adapted = adapted, (adapted if res.kept else model)
            row = {"image": p.stem, "masks": kind, "hole_fraction": float(hole.mean()), "steps": res.steps,
                   "seconds": secs, "kept": res.kept, "score_base": res.score_base, "score_adapted": res.score_adapted,
                   "loss_first": res.loss_first, "loss_last": res.loss_last}
            ct = to_tensor(clean)
            for tex in textures:
                runs = [("shipped", model), ("adapted", adapted)] + ([("forced", forced)] if forced else [])
                for name, m in runs:
                    out = m.run_arrays([holed], mask=mask, texture=tex)[0]
                    assert np.array_equal(out[~hole], clean[~hole])
                    key = name if tex else name + "_smooth"
                    row[key] = psnr(to_tensor(out), ct)
                    row[key + "_hole"] = hole_psnr(out, clean, hole)
            rows.append(row)
            if forced:
                print(f"    forced copy: PSNR {row['forced']:.2f} (hole {row['forced_hole']:.2f})", flush=True)
            extra = (f"  smooth {row['shipped_smooth']:.2f}->{row['adapted_smooth']:.2f} "
                     f"(hole {row['shipped_smooth_hole']:.2f}->{row['adapted_smooth_hole']:.2f})" if False in textures else "")
            print(f"{kind:<6}{p.stem:<10} hole {100 * row['hole_fraction']:4.1f}%  {res.steps:4d} steps {secs:5.1f} s  "
                  f"loss {res.loss_first:.4f}->{res.loss_last:.4f} check {res.score_base:.5f}->{res.score_adapted:.5f} "
                  f"{'kept' if res.kept else 'base'}  "
                  f"PSNR {row['shipped']:.2f}->{row['adapted']:.2f} (hole {row['shipped_hole']:.2f}->{row['adapted_hole']:.2f})"
                  + extra, flush=True)
    print()
    summary = []
    for kind in args.masks.split(","):
        rs = [r for r in rows if r["masks"] == kind]
        line = {"masks": kind, "images": len(rs), "steps": float(np.mean([r["steps"] for r in rs])),
                "seconds": float(np.mean([r["seconds"] for r in rs])), "kept": sum(r["kept"] for r in rs)}
        for key in ("shipped", "adapted", "forced", "shipped_hole", "adapted_hole", "forced_hole", "shipped_smooth",
                    "adapted_smooth", "forced_smooth", "shipped_smooth_hole", "adapted_smooth_hole", "forced_smooth_hole"):
            if key in rs[0]:
                line[key] = float(np.mean([r[key] for r in rs]))
        summary.append(line)
        msg = (f"{kind}: {len(rs)} images, {line['steps']:.0f} steps, {line['seconds']:.1f} s/photo, kept {line['kept']}/{len(rs)}; "
               f"PSNR shipped {line['shipped']:.2f} adapted {line['adapted']:.2f} ({line['adapted'] - line['shipped']:+.2f} dB); "
               f"hole {line['shipped_hole']:.2f} -> {line['adapted_hole']:.2f} "
               f"({line['adapted_hole'] - line['shipped_hole']:+.2f} dB)")
        if "forced" in line:
            msg += (f"; forced copy {line['forced']:.2f} ({line['forced'] - line['shipped']:+.2f} dB), hole "
                    f"{line['forced_hole']:.2f} ({line['forced_hole'] - line['shipped_hole']:+.2f} dB)")
        if "shipped_smooth" in line:
            msg += (f"; texture=False {line['shipped_smooth']:.2f} -> {line['adapted_smooth']:.2f} "
                    f"({line['adapted_smooth'] - line['shipped_smooth']:+.2f} dB)")
        print(msg)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "lr": Inpaint.adapt_lr, "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
