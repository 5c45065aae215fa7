"""Video benchmark (issue 33), on a clip made from a still photo: a slow pan and zoom, Gaussian
noise drawn anew each frame, a 440 Hz tone.

    python benchmarks/bench_video.py ../shared/data/Kodak24/kodim23.png --frames 48 --size 640x360 \
        --sigma 25 --json bench_out/video.json
    python benchmarks/bench_video.py photo.png --task stylize --style starry-night --sigma 0 ...

Runs the command on the clip as a user does (`vitrestore denoise clip.mp4`, steady frames on
unless --no-steady) and on the same decoded frames as PNG files (the image path, frame by
frame). Reports:
    psnr_video     the output clip's frames against the clean frames (mean over frames; denoise)
    psnr_frames    the PNG frames' outputs against them: the clip's cost is psnr_frames -
                   psnr_video (bar: at most 0.3 dB)
    flicker        mean absolute change of the residual (output - clean) between consecutive
                   frames, for the clip and for the PNG frames (bar: the clip's <= the frames')
    warp_error     mean absolute difference between each output frame and the one before moved
                   by the clip's true motion (the pan and zoom are known), inside the picture:
                   what changes that the motion does not explain (flicker proper)
    audio          whether the output's audio packets equal the input's
    s_per_frame    the command's wall time per frame (2 CPU threads), the model's start included
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitrestore.io.video import frames  # noqa: E402


def make_clip(photo: Path, out: Path, n: int, size: tuple[int, int], sigma: float, fps: int = 24,
              chroma: str = "420") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The noisy clip at `out` (H.264 CRF 4, 4:2:0 as a camera or phone writes it, or 4:4:4; an
    AAC tone); returns the clean frames (RGB uint8) and each frame's (2, 3) affine map from the
    photo's pixels to the frame's."""
    import av

    img = cv2.imread(str(photo))[:, :, ::-1]
    h, w = img.shape[:2]
    tw, th = size
    rng = np.random.default_rng(0)
    clean, maps = [], []
    with av.open(str(out), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = tw, th, f"yuv{chroma}p"
        v.options = {"crf": "4"}
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        for i in range(n):
            t = i / max(n - 1, 1)
            zoom = 1.0 + 0.15 * t  # a slow zoom and pan across the photo
            cw, ch = w / zoom * 0.8, h / zoom * 0.8
            x0, y0 = (w - cw) * (0.2 + 0.6 * t), (h - ch) * 0.5
            m = np.array([[tw / cw, 0, -x0 * tw / cw], [0, th / ch, -y0 * th / ch]], np.float32)
            frame = cv2.warpAffine(img, m, (tw, th), flags=cv2.INTER_AREA)
            clean.append(frame)
            maps.append(m)
            noisy = np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).round().astype(np.uint8)
            f = av.VideoFrame.from_ndarray(noisy, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(48000 * n // fps) / 48000)).astype(np.float32)
        for k in range(0, len(tone), 1024):
            fr = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="flt", layout="mono")
            fr.sample_rate, fr.pts = 48000, k
            for p in a.encode(fr):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    return clean, maps


def warp_error(outs: list[np.ndarray], maps: list[np.ndarray]) -> float:
    """Mean |out_t - out_{t-1} moved by the true motion| over the pixels both frames show (4 px
    in from the edges). `maps[t]`: (2, 3) photo -> frame t, at the outputs' size."""
    errors = []
    for t in range(1, len(outs)):
        h, w = outs[t].shape[:2]
        a_prev, a_cur = np.vstack([maps[t - 1], [0, 0, 1]]), np.vstack([maps[t], [0, 0, 1]])
        step = (a_cur @ np.linalg.inv(a_prev))[:2].astype(np.float32)  # frame t-1 -> frame t
        moved = cv2.warpAffine(outs[t - 1].astype(np.float32), step, (w, h), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(np.ones((h, w), np.uint8), step, (w, h), flags=cv2.INTER_NEAREST)
        inside = cv2.erode(inside, np.ones((9, 9), np.uint8)).astype(bool)
        errors.append(float(np.abs(outs[t].astype(np.float32) - moved)[inside].mean()))
    return float(np.mean(errors))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def flicker(outs: list[np.ndarray], clean: list[np.ndarray]) -> float:
    res = [o.astype(np.float32) - c for o, c in zip(outs, clean)]
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(res, res[1:])]))


def detail(outs: list[np.ndarray]) -> float:
    """Mean absolute Laplacian of the frames' grey: how much fine texture (strokes, grain) they hold."""
    grey = lambda f: cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32)  # noqa: E731
    return float(np.mean([np.abs(cv2.Laplacian(grey(f), cv2.CV_32F)).mean() for f in outs]))


def audio_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.dts is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photo", type=Path)
    ap.add_argument("--task", choices=("denoise", "stylize"), default="denoise")
    ap.add_argument("--style", default="starry-night", help="stylize: the shipped style")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--sigma", type=float, default=25)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--crf", type=int, help="passed to the command (default: the codec's)")
    ap.add_argument("--chroma", choices=("420", "444"), default="420",
                    help="the source clip's chroma sampling (the output keeps it)")
    ap.add_argument("--out-chroma", choices=("420", "422", "444"), help="the command's --chroma (default: the source's)")
    ap.add_argument("--no-steady", action="store_true", help="the command without --steady (frame by frame)")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clean, maps = make_clip(args.photo, tmp / "clip.mp4", args.frames, size, args.sigma, chroma=args.chroma)
        (tmp / "png").mkdir()
        for f in frames(tmp / "clip.mp4"):  # the noisy frames as the decoder gives them, as PNG files
            cv2.imwrite(str(tmp / "png" / f"{f.index:05d}.png"), f.rgb[:, :, ::-1])
        cmd = [sys.executable, "-m", "vitrestore", args.task, "-q",
               *(["--style", args.style] if args.task == "stylize" else [])]
        made = f"clip_{'denoised' if args.task == 'denoise' else args.style}.mp4"
        start = time.perf_counter()
        subprocess.run([*cmd, str(tmp / "clip.mp4"), *(["--crf", str(args.crf)] if args.crf is not None else []),
                        *(["--no-steady"] if args.no_steady else []),
                        *(["--chroma", args.out_chroma] if args.out_chroma else [])], check=True)
        seconds = time.perf_counter() - start
        subprocess.run([*cmd, str(tmp / "png"), "-o", str(tmp / "png_out")], check=True)
        video = [f.rgb for f in frames(tmp / made)]
        pngs = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((tmp / "png_out").glob("*.png"))]
        noisy = [f.rgb for f in frames(tmp / "clip.mp4")]
        result = {
            "task": args.task, "style": args.style if args.task == "stylize" else None,
            "photo": args.photo.name, "frames": len(video), "size": args.size, "sigma": args.sigma, "crf": args.crf,
            "chroma": args.chroma, "out_chroma": args.out_chroma, "steady": not args.no_steady,
            "psnr_noisy": float(np.mean([psnr(a, b) for a, b in zip(noisy, clean)])),
            "psnr_video": float(np.mean([psnr(a, b) for a, b in zip(video, clean)])),
            "psnr_frames": float(np.mean([psnr(a, b) for a, b in zip(pngs, clean)])),
            "flicker_video": flicker(video, clean), "flicker_frames": flicker(pngs, clean),
            "warp_error_video": warp_error(video, maps), "warp_error_frames": warp_error(pngs, maps),
            "detail_video": detail(video), "detail_frames": detail(pngs),
            "audio_identical": audio_packets(tmp / "clip.mp4") == audio_packets(tmp / made),
            "s_per_frame": seconds / len(video),
        }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
