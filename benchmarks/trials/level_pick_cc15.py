"""Trial for issue 34 (`--adapt` picks the denoiser's level), not a feature: two ways to choose
`--sigma` for a folder without clean images, each scored against the level that is best on the
ground truth.

    python benchmarks/trials/level_pick_cc15.py pseudo   # CC15 per camera
    python benchmarks/trials/level_pick_cc15.py rule     # CC15 + Kodak24 synthetic camera / Gaussian files

pseudo  the level that best restores re-synthesised noise (tasks/denoise_adapt.py's pairs: the
        blind outputs plus the photos' own residual noise) to the blind outputs; printed per
        camera as PSNR at each candidate level (blind = 0)
rule    how much of the photo's coarse noise the blind output leaves: the Immerkaer estimate
        (ops/selfsup.py noise_std, 2x2 means) of the residual over the photo's; per image that
        ratio, blind and `--sigma 40` PSNR, then per set the gain of "sigma 40 where the ratio
        is under tau" over blind for several tau
One pass (ensemble 1), one thread; reads ../shared/data (not shipped).
"""
import glob
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]
from bench_adapt_denoise import groups  # noqa: E402
from bench_denoise import add_noise, as_file  # noqa: E402
from vitrestore.engine.adapt import AdaptSettings, pooled_samples  # noqa: E402
from vitrestore.metrics import psnr  # noqa: E402
from vitrestore.ops.selfsup import noise_std  # noqa: E402
from vitrestore.tasks import denoise_adapt, load_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


class CC15:
    gaussian = None
    cc15 = str(DATA / "CC15")


def pseudo(model) -> None:
    task, net = model.task, model.generator.float().eval()
    cands = [0, 10, 20, 30, 40, 50, 65]
    for cam, pairs in groups(CC15).items():
        samples = pooled_samples(pairs, lambda p: (p[0], {}), AdaptSettings(seconds=120))
        p = denoise_adapt.prepare(task, samples, lambda im, **r: model.run_tensor(im, **r).cpu())
        gen = torch.Generator().manual_seed(0)
        batches = [denoise_adapt.batch(task, p, gen) for _ in range(48)]
        row = []
        with torch.no_grad():
            for s in cands:
                err = sum(float(((net(b.input, task.condition(b.input, **({"sigma": s} if s else {})))
                                  - b.target) ** 2).mean()) for b in batches)
                row.append(10 * np.log10(len(batches) / err))
        print(cam, f"gain {p.gain:.2f}", " ".join(f"{s}:{v:.2f}" for s, v in zip(cands, row)), flush=True)


def rule(model) -> None:
    rows: dict[str, list] = {}

    def one(name, x, c):
        y = x.float() / 255
        blind, strong = model(x).float() / 255, model(x, sigma=40).float() / 255
        ratio = noise_std(y - blind + 0.5, 2) / max(noise_std(y, 2), 1e-6)
        rows.setdefault(name, []).append((ratio, psnr(blind, c), psnr(strong, c)))

    for cam, pairs in groups(CC15).items():
        for noisy, clean in pairs:
            one("cc15-" + cam, noisy, clean)
    tmp = Path(tempfile.mkdtemp())
    for noise, levels in (("camera", ("low", "mid", "high")), ("gaussian", (5, 15, 25))):
        for lv in levels:
            for i, f in enumerate(sorted(glob.glob(str(DATA / "Kodak24" / "*.png")))[:6]):
                clean = cv2.imread(f)[:, :, ::-1].astype(np.float32) / 255
                u8, _ = as_file(add_noise(clean, noise, lv, i), noise, tmp, f"{i}")
                t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
                one(f"kodak-{noise}-{lv}", t(u8), t(clean))
    for k, v in rows.items():
        print(k, "ratios", " ".join(f"{r:.2f}" for r, _, _ in v), f"sigma 40 - blind {np.mean([q - p for _, p, q in v]):+.2f}")
    for tau in (0.5, 0.55, 0.6, 0.65, 0.7):
        print(f"tau {tau}:", " ".join(f"{k} {np.mean([q if r < tau else p for r, p, q in v]) - np.mean([p for _, p, _ in v]):+.2f}"
                                      for k, v in rows.items()))


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"pseudo": pseudo, "rule": rule}[sys.argv[1]](load_model("denoise", device="cpu", ensemble=1))
