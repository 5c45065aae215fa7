"""`vitrestore repair` benchmark (issue 32): synthetic old-photo damage (tasks/repair_damage.py,
held-out seeds 900000+) on Kodak24 / McMaster, and undamaged photos for false fills.

    python benchmarks/bench_repair.py ../shared/data/Kodak24 --model runs/repair-detector/weights.safetensors \
        --limit 24 --json bench_out/repair_kodak.json

Per photo: the clean photo aged (`clean`), the same with damage (`damaged`) and the drawn mask.
Methods, each giving a mask and a repaired photo (8-bit, RGB, the 1 px dilated true mask scored):
    oracle   OpenCV Telea on the true mask (knowing the damage)
    tophat   a classical detector: white top-hat and black-hat (5x5), thresholded at mean + k std of
             the response (k = --tophat-k), then Telea on its mask
    ours     the detector at --sensitivity, filled by the shipped inpaint model (the command's way)
Mask F1 within 1 px (precision: detected pixels within 1 px of damage; recall: damage pixels
within 1 px of a detection), PSNR against `clean`; `--undamaged` also runs the detectors on the
aged photos without damage and on the photos as they are (no ageing), and reports the share of
pixels detected (false fills); `--masks DIR` writes the masks found on the photos as they are
(<name>_mask.png: look at the portraits' faces), `--gallery PNG` a damaged | found mask | repaired
| clean grid of the photos `--gallery-images` names.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitrestore.data import list_images, read_rgb_uint8  # noqa: E402
from vitrestore.tasks import load_model  # noqa: E402
from vitrestore.tasks.repair import f1_within as task_f1_within  # noqa: E402
from vitrestore.tasks.repair_damage import OldPhoto  # noqa: E402

SEED = 900_000  # held out: training draws its seeds from the step's generator, never these


def f1_within(pred: np.ndarray, true: np.ndarray, px: int = 1) -> tuple[float, float, float]:
    """(precision, recall, F1) of two (H, W) bool masks within `px`: the task's validation measure."""
    as_map = lambda m: torch.from_numpy(m.astype(np.float32))[None, None]  # noqa: E731  (1, 1, H, W)
    return task_f1_within(as_map(pred), as_map(true), px)


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def telea(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return img
    return cv2.inpaint(img[:, :, ::-1].copy(), mask.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)[:, :, ::-1]


def tophat_mask(img: np.ndarray, k: float) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    response = np.maximum(cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel),
                          cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel))
    mask = response > response.mean() + k * response.std()
    return cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def gallery(out: Path, cells: list, side: int) -> None:
    """Rows of damaged | mask found | repaired | clean, each a centre crop of `side` px."""
    rows = []
    for _, damaged, found, repaired, clean in cells:
        h, w = damaged.shape[:2]
        y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
        crop = lambda a: a[y:y + side, x:x + side]  # noqa: E731
        mask = np.repeat(found[..., None].astype(np.uint8) * 255, 3, axis=2)
        rows.append(np.concatenate([crop(a) for a in (damaged, mask, repaired, clean)], axis=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.concatenate(rows, axis=0)[:, :, ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--model", required=True, help="the repair detector's weights")
    ap.add_argument("--fill", default="inpaint")
    ap.add_argument("--sensitivity", type=float, default=0.5)
    ap.add_argument("--tophat-k", type=float, default=3.0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--undamaged", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--masks", type=Path, help="write the masks found on the undamaged photos here")
    ap.add_argument("--gallery", type=Path)
    ap.add_argument("--gallery-images", default="", help="comma-separated names (default: the first three)")
    ap.add_argument("--gallery-crop", type=int, default=256, help="the side of each cell's centre crop")
    args = ap.parse_args()
    detector = load_model(args.model, device="cpu")
    fill = load_model(args.fill, device="cpu")
    paths = list_images(args.folder)[: args.limit or None]
    rows, seconds, pixels, cells = [], 0.0, 0, []
    for i, path in enumerate(paths):
        photo = read_rgb_uint8(path).permute(1, 2, 0).numpy().astype(np.float32) / 255
        clean, damaged, mask = OldPhoto()(photo, torch.Generator().manual_seed(SEED + i))
        u8 = lambda x: (np.clip(x, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
        clean8, damaged8, true = u8(clean), u8(damaged), mask > 0
        row = {"image": path.name, "damage_share": float(true.mean())}
        raw8 = u8(photo)
        for name, source in (("damaged", damaged8),) + ((("undamaged", clean8), ("raw", raw8)) if args.undamaged
                                                         else ()):
            start = time.perf_counter()
            found = detector.run_arrays([source], sensitivity=args.sensitivity)[0][..., 0] > 127
            ours = fill.run_arrays([source], mask=torch.from_numpy(found.astype("float32"))[None, None])[0] \
                if found.any() else source
            if name == "damaged":
                seconds += time.perf_counter() - start
                pixels += source.shape[0] * source.shape[1]
                hat = tophat_mask(source, args.tophat_k)
                for method, m, out in (("oracle", true, telea(source, true)), ("tophat", hat, telea(source, hat)),
                                       ("ours", found, ours)):
                    p, r, f1 = f1_within(m, true)
                    row[method] = {"psnr": psnr8(out, clean8), "f1": f1, "precision": p, "recall": r}
                row["damaged_psnr"] = psnr8(damaged8, clean8)
                cells.append((path.name, damaged8, found, ours, clean8))
            else:
                key = "false_share" if name == "undamaged" else "raw_false_share"
                row[key] = float(found.mean())
                row["tophat_" + key] = float(tophat_mask(source, args.tophat_k).mean())
                if name == "raw" and args.masks:
                    args.masks.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(args.masks / f"{path.stem}_mask.png"), found.astype(np.uint8) * 255)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {m: {k: float(np.mean([r[m][k] for r in rows])) for k in ("psnr", "f1", "precision", "recall")}
               for m in ("oracle", "tophat", "ours")}
    summary["damaged_psnr"] = float(np.mean([r["damaged_psnr"] for r in rows]))
    summary["s_per_mp"] = seconds / max(pixels / 1e6, 1e-9)
    if args.undamaged:
        for key in ("false_share", "tophat_false_share", "raw_false_share", "tophat_raw_false_share"):
            summary[key] = float(np.mean([r[key] for r in rows]))
    if args.gallery:
        wanted = args.gallery_images.split(",") if args.gallery_images else [c[0] for c in cells[:3]]
        gallery(args.gallery, [c for c in cells if c[0] in wanted], args.gallery_crop)
    print(json.dumps(summary, indent=1))
    o, t, ours = summary["oracle"], summary["tophat"], summary["ours"]
    line = (f"{args.folder.name} synthetic old-photo damage ({len(rows)} images, held-out seeds, sensitivity "
            f"{args.sensitivity:g}): mask F1 {ours['f1']:.3f} (precision {ours['precision']:.3f}, recall "
            f"{ours['recall']:.3f}), repaired PSNR {ours['psnr']:.2f} dB; {summary['s_per_mp']:.2f} s/MP (CPU) "
            f"[vs damaged {summary['damaged_psnr']:.2f}; OpenCV Telea on the true mask {o['psnr']:.2f}; top-hat "
            f"detector + Telea F1 {t['f1']:.3f}, {t['psnr']:.2f} dB]")
    card_lines = [line]
    if args.undamaged:
        card_lines.append(f"{args.folder.name} undamaged ({len(rows)} images): detected area "
                          f"{100 * summary['raw_false_share']:.3f}% as they are, {100 * summary['false_share']:.3f}% "
                          f"aged [top-hat {100 * summary['tophat_raw_false_share']:.2f}% / "
                          f"{100 * summary['tophat_false_share']:.2f}%]")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "summary": summary, "card_lines": card_lines}, indent=1))


if __name__ == "__main__":
    main()
