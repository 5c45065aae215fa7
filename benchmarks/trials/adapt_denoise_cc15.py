"""Trial for issue 34 (`--adapt`), not a feature: fine-tune a copy of the shipped denoiser on one
camera's noisy CC15 photos for SECONDS of wall time with a self-supervised objective, then
measure PSNR/SSIM against the CC15 means (the photos it adapted on, as --adapt would run).

    python benchmarks/trials/adapt_denoise_cc15.py OBJECTIVE SECONDS [LR] [PULL]

OBJECTIVE (crops of 96 px, batch 1, Adam, blind condition):
  n2n        Neighbor2Neighbor: two half-size sub-images of the noisy crop (a different pixel of
             each 2x2 cell), f(y1) -> y2 plus its consistency term; PULL weighs an L1 pull of
             f(y) towards the shipped model's output (x 0.01)
  resyn      pseudo pairs: the shipped output x^ plus a residual (y - x^) crop from another place
             of the same camera's photos, -> x^
  resynflat  the same, the residual taken from the flattest of 8 candidate places
  nlf        the same, the flat residual normalised by the camera's noise-level function
             (var = a + b * x^ per channel, fitted on flat pixels) and re-scaled to the target's
  r2r        recorrupted pairs y + a r -> y - r / a (ALPHA env, default 0.5)
CAMS (env, e.g. 5dmark3,d800) limits the cameras; SAVE_DIR (env) saves a crop of each camera's
first photo there (noisy | shipped | adapted | mean). PARAMS (env, comma-separated name prefixes) adapts only those parameters (e.g. the full-resolution
path: encoder.,enc_stages.0.,dec_stages.0.,head.,to_pixels.,fuses.0.).
Reads ../shared/data/CC15 (not shipped); one run per objective, 2 CPU threads.
"""
import collections, copy, glob, os, sys, time
from pathlib import Path

import numpy as np, cv2, torch, torch.nn.functional as F
from vitrestore.tasks import load_model
from vitrestore.metrics import psnr, ssim
torch.manual_seed(0)
obj, T = sys.argv[1], float(sys.argv[2])
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 2e-5
pull = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
crop = 96
ALPHA = float(os.environ.get("ALPHA", "0.5"))
base = load_model("denoise", device="cpu", backend="torch", precision="fp32", ensemble=2)
t = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]
cams = collections.defaultdict(list)
for real in sorted(glob.glob(str(Path(__file__).resolve().parents[3] / "shared/data/CC15/*_real.png"))):
    cams[real.split("/")[-1].split("_")[0]].append(real)
gen0 = base.generator
def cond(x): return torch.zeros(x.shape[0], 2, *x.shape[2:])

def n2n_masks(b, h, w, g):
    # two different pixels of each 2x2 cell: index 0..3 pairs from neighbours
    idx1 = torch.randint(0, 4, (b, h // 2, w // 2), generator=g)
    off = torch.randint(1, 4, (b, h // 2, w // 2), generator=g)
    idx2 = (idx1 + off) % 4
    return idx1, idx2

def sub(x, idx):  # x (B,C,H,W) -> (B,C,H/2,W/2) picking pixel idx of each 2x2 cell
    b, c, h, w = x.shape
    cells = F.pixel_unshuffle(x, 2).view(b, c, 4, h // 2, w // 2)
    return torch.gather(cells, 2, idx[:, None, None].expand(b, c, 1, h // 2, w // 2)).squeeze(2)

def random_residual(ys, bases, H, W, g):
    """The residual (y - shipped output) at a random place of a random photo of this camera, a
    noise sample independent of the crop being trained, and the shipped output there."""
    k2 = int(torch.randint(len(ys), (1,), generator=g))
    i2 = int(torch.randint(0, H - crop, (1,), generator=g)); j2 = int(torch.randint(0, W - crop, (1,), generator=g))
    return (ys[k2] - bases[k2])[..., i2:i2 + crop, j2:j2 + crop], bases[k2][..., i2:i2 + crop, j2:j2 + crop]


def flattest_residual(ys, bases, H, W, g, tries=8):
    """random_residual at the flattest of `tries` places (there the residual is mostly noise):
    two (1, 3, crop, crop)."""
    best = None
    for _ in range(tries):
        r, bb = random_residual(ys, bases, H, W, g)
        energy = float((bb[..., 1:, :] - bb[..., :-1, :]).abs().mean() + (bb[..., 1:] - bb[..., :-1]).abs().mean())
        if best is None or energy < best[0]:
            best = (energy, r, bb)
    return best[1], best[2]


for cam, files in cams.items():
    if os.environ.get("CAMS") and cam not in os.environ["CAMS"].split(","):
        continue
    ys = [t(cv2.imread(f)[:, :, ::-1].copy()) for f in files]
    xs = [t(cv2.imread(f.replace("_real", "_mean"))[:, :, ::-1].copy()) for f in files]
    with torch.no_grad():
        bases = [torch.from_numpy(base(y[0].permute(1, 2, 0).numpy())).permute(2, 0, 1)[None] for y in ys]
    if obj == "nlf":
        xs_all, rs_all = [], []
        for y, b in zip(ys, bases):
            r = y - b
            gx = (b[..., :, 1:] - b[..., :, :-1]).abs()[..., :-1, :] + (b[..., 1:, :] - b[..., :-1, :]).abs()[..., :, :-1]
            flat = gx.mean(1, keepdim=True) < gx.mean(1, keepdim=True).quantile(0.3)
            bb, rr = b[..., :-1, :-1], r[..., :-1, :-1]
            xs_all.append(bb.permute(1, 0, 2, 3)[:, flat[:, 0]]); rs_all.append(rr.permute(1, 0, 2, 3)[:, flat[:, 0]])
        X, R = torch.cat(xs_all, 1), torch.cat(rs_all, 1)  # (3, N)
        nlf = []
        for c in range(3):
            A = torch.stack([torch.ones_like(X[c]), X[c]], 1)
            sol = torch.linalg.lstsq(A, (R[c] ** 2)[:, None]).solution[:, 0]
            nlf.append((max(float(sol[0]), 1e-7), max(float(sol[1]), 0.0)))
        print(cam, "nlf", [(f"{a:.2e}", f"{b_:.2e}") for a, b_ in nlf], flush=True)
        A_ = torch.tensor([a for a, _ in nlf]).view(1, 3, 1, 1); B_ = torch.tensor([b_ for _, b_ in nlf]).view(1, 3, 1, 1)
        std = lambda im: (A_ + B_ * im.clamp(0, 1)).sqrt()
    gen = copy.deepcopy(gen0).train()
    prefixes = tuple(os.environ.get("PARAMS", "").split(",")) if os.environ.get("PARAMS") else ("",)
    for n, prm in gen.named_parameters():  # PARAMS=encoder,enc_stages.0,...: adapt only those
        prm.requires_grad_(n.startswith(prefixes))
    opt = torch.optim.Adam([prm for prm in gen.parameters() if prm.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(0)
    start, steps, losses = time.time(), 0, []
    while time.time() - start < T:
        k = int(torch.randint(len(ys), (1,), generator=g))
        _, _, H, W = ys[k].shape
        i = int(torch.randint(0, (H - crop) // 2, (1,), generator=g)) * 2
        j = int(torch.randint(0, (W - crop) // 2, (1,), generator=g)) * 2
        y = ys[k][..., i:i + crop, j:j + crop]; xb = bases[k][..., i:i + crop, j:j + crop]
        if obj == "n2n":
            i1, i2 = n2n_masks(1, crop, crop, g)
            y1, y2 = sub(y, i1), sub(y, i2)
            out1 = gen(y1, cond(y1))
            with torch.no_grad():
                fy = gen(y, cond(y))
            loss = F.mse_loss(out1, y2) + 1.0 * F.mse_loss(out1 - y2, sub(fy, i1) - sub(fy, i2))
            if pull:
                loss = loss + pull * F.l1_loss(gen(y, cond(y)), xb) * 0.01
        elif obj in ("resyn", "resynflat", "nlf"):  # pseudo pairs: shipped output + a noise sample -> shipped output
            r, place = (random_residual if obj == "resyn" else flattest_residual)(ys, bases, H, W, g)
            noise = r / std(place) if obj == "nlf" else r  # nlf: unit variance, the camera's correlation kept
            if torch.rand(1, generator=g) < 0.5: noise = noise.flip(-1)
            z = xb + (noise * std(xb) if obj == "nlf" else noise)
            loss = F.l1_loss(gen(z, cond(z)), xb)
        if obj == "r2r":
            r, _ = random_residual(ys, bases, H, W, g)
            if torch.rand(1, generator=g) < 0.5: r = r.flip(-1)
            if torch.rand(1, generator=g) < 0.5: r = r.flip(-2)
            a = ALPHA
            z, tgt = y + a * r, y - r / a
            loss = F.mse_loss(gen(z, cond(z)), tgt)
            if pull:
                loss = loss + pull * F.l1_loss(gen(y, cond(y)), xb) * 0.01
        opt.zero_grad(); loss.backward(); opt.step(); steps += 1; losses.append(float(loss))
    gen.eval()

    def n2n_score(net):  # a self-supervised check (no clean image): Neighbor2Neighbor loss on fixed sub-images
        gg, total = torch.Generator().manual_seed(1), 0.0
        with torch.no_grad():
            for y in ys:
                _, _, H2, W2 = y.shape
                yy = y[..., : H2 // 2 * 2, : W2 // 2 * 2]
                i1, i2 = n2n_masks(1, yy.shape[2], yy.shape[3], gg)
                y1, y2 = sub(yy, i1), sub(yy, i2)
                total += float(F.mse_loss(net(y1, cond(y1)), y2))
        return total / len(ys)

    gate = (n2n_score(gen0.eval()), n2n_score(gen))
    m = copy.copy(base); m.generator = gen
    from vitrestore.engine.nets import TorchNet
    m.net = TorchNet(gen, torch.device("cpu"), "fp32")
    out_p, base_p, ss = [], [], []
    with torch.no_grad():
        for y, x, b in zip(ys, xs, bases):
            o = torch.from_numpy(m(y[0].permute(1, 2, 0).numpy())).permute(2, 0, 1)[None].float()
            out_p.append(psnr(o, x)); base_p.append(psnr(b, x)); ss.append(ssim(o, x))
            if os.environ.get("SAVE_DIR") and len(out_p) == 1:  # noisy | shipped | adapted | mean, centre crop
                c0, c1 = (y.shape[2] - 192) // 2, (y.shape[3] - 192) // 2
                row = torch.cat([im[0, :, c0:c0 + 192, c1:c1 + 192] for im in (y, b, o, x)], 2)
                grid = (row.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
                cv2.imwrite(str(Path(os.environ["SAVE_DIR"]) / f"{obj}_{cam}.png"), grid[:, :, ::-1])
    print(f"{cam}: {len(ys)} imgs, {steps} steps, loss {np.mean(losses[:20]):.5f}->{np.mean(losses[-20:]):.5f}; "
          f"shipped {np.mean(base_p):.2f} adapted {np.mean(out_p):.2f} ssim {np.mean(ss):.4f}; "
          f"n2n check shipped {gate[0]:.6f} adapted {gate[1]:.6f}", flush=True)
