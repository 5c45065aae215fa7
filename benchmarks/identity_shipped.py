"""Every shipped model's outputs from one checkout, to show a refactor changes no pixel.

    python benchmarks/identity_shipped.py run CHECKOUT OUT    # each case through CHECKOUT's CLI
    python benchmarks/identity_shipped.py compare OUT_A OUT_B # the table: identical, or how far

Cases: each shipped model through its command with its defaults (denoise also with --sigma 25,
inpaint with a stroke mask, upscale x2 / x4 / real), on two 256x192 crops of Kodak24
(../shared/data) and a 16-bit grey crop. CHECKOUT is a source tree (e.g. a `git worktree` of an
earlier commit): its own vitrestore and tasks/ run, whatever is installed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def inputs(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (y, x) in (("kodim03", (120, 200)), ("kodim21", (200, 300))):
        img = cv2.imread(str(DATA / "Kodak24" / f"{name}.png"))[y:y + 192, x:x + 256]
        out.append(folder / f"{name}.png")
        cv2.imwrite(str(out[-1]), img)
    grey = cv2.cvtColor(cv2.imread(str(DATA / "Kodak24" / "kodim08.png")), cv2.COLOR_BGR2GRAY)[100:292, 100:356]
    out.append(folder / "grey16.png")
    cv2.imwrite(str(out[-1]), grey.astype(np.uint16) * 257)
    mask = np.zeros((192, 256), np.uint8)
    cv2.line(mask, (20, 30), (230, 160), 255, 7)
    cv2.circle(mask, (180, 60), 18, 255, -1)
    cv2.imwrite(str(folder / "mask.png"), mask)
    return out


def cases(models: list[str]) -> list[tuple[str, list[str]]]:
    out = [("denoise", ["denoise"]), ("denoise-sigma25", ["denoise", "--sigma", "25"]),
           ("upscale-x2", ["upscale", "--scale", "2"]), ("upscale-x4", ["upscale"]),
           ("upscale-x4-real", ["upscale", "--model", "real"]), ("inpaint", ["inpaint", "--mask", "MASK"])]
    out += [(m, ["stylize", "--style", m[len("style-"):]]) for m in models if m.startswith("style-")]
    return out


def run(checkout: Path, out: Path) -> None:
    images = inputs(out / "inputs")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    models = subprocess.run([sys.executable, "-c", "from vitrestore.weights import shipped_models; "
                             "print(' '.join(shipped_models()))"], env=env, cwd=checkout, capture_output=True,
                            text=True, check=True).stdout.split()
    for name, argv in cases(models):
        argv = [a.replace("MASK", str(out / "inputs" / "mask.png")) for a in argv]
        for img in images:
            if name == "inpaint" and img.stem == "grey16":
                continue
            dst = out / f"{name}__{img.stem}.png"
            done = subprocess.run([sys.executable, "-m", "vitrestore", argv[0], str(img), *argv[1:], "-o", str(dst),
                                   "-q", "--overwrite"], env=env, cwd=checkout, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{name} {img.name}: {done.stderr.strip()}")
        print(name, flush=True)


def compare(a: Path, b: Path) -> None:
    print("| case | image | identical | max diff (0-255 / 0-65535) |\n|---|---|---|---|")
    for f in sorted(a.glob("*__*.png")):
        x, y = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (f, b / f.name))
        case, image = f.stem.split("__")
        same = hashlib.sha256(f.read_bytes()).digest() == hashlib.sha256((b / f.name).read_bytes()).digest()
        diff = 0 if same else int(np.abs(x.astype(np.int64) - y.astype(np.int64)).max())
        print(f"| {case} | {image} | {'yes (bytes)' if same else 'no'} | {diff} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("checkout", type=Path)
    r.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    run(args.checkout.resolve(), args.out.resolve()) if args.cmd == "run" else compare(args.a, args.b)
