"""Video benchmark (issue 33), on a clip made from a still photo: a slow pan and zoom, Gaussian
noise drawn anew each frame, a 440 Hz tone.

    python benchmarks/bench_video.py ../shared/data/Kodak24/kodim23.png --frames 48 --size 640x360 \
        --sigma 25 --json bench_out/video.json

Reports, for `vitrestore denoise` on the clip (the command, as a user runs it):
    psnr_video     the output clip's frames against the clean frames (mean over frames)
    psnr_frames    the same frames denoised as PNG files (the image path): the codec's cost is
                   psnr_frames - psnr_video (bar: at most 0.3 dB)
    flicker        mean absolute change of the residual (output - clean) between consecutive
                   frames, for the clip and for the PNG frames (bar: the clip's <= the frames')
    audio          whether the output's audio packets equal the input's
    s_per_frame    the command's wall time per frame (2 CPU threads)
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
              chroma: str = "420") -> list[np.ndarray]:
    """The noisy clip at `out` (H.264 CRF 4, 4:2:0 as a camera or phone writes it, or 4:4:4; an
    AAC tone); returns the clean frames (RGB uint8)."""
    import av

    img = cv2.imread(str(photo))[:, :, ::-1]
    h, w = img.shape[:2]
    tw, th = size
    rng = np.random.default_rng(0)
    clean = []
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
    return clean


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def flicker(outs: list[np.ndarray], clean: list[np.ndarray]) -> float:
    res = [o.astype(np.float32) - c for o, c in zip(outs, clean)]
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(res, res[1:])]))


def audio_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.dts is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photo", type=Path)
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
        clean = make_clip(args.photo, tmp / "clip.mp4", args.frames, size, args.sigma, chroma=args.chroma)
        (tmp / "png").mkdir()
        for f in frames(tmp / "clip.mp4"):  # the noisy frames as the decoder gives them, as PNG files
            cv2.imwrite(str(tmp / "png" / f"{f.index:05d}.png"), f.rgb[:, :, ::-1])
        cmd = [sys.executable, "-m", "vitrestore", "denoise", "-q"]
        start = time.perf_counter()
        subprocess.run([*cmd, str(tmp / "clip.mp4"), *(["--crf", str(args.crf)] if args.crf is not None else []),
                        *(["--no-steady"] if args.no_steady else []),
                        *(["--chroma", args.out_chroma] if args.out_chroma else [])], check=True)
        seconds = time.perf_counter() - start
        subprocess.run([*cmd, str(tmp / "png"), "-o", str(tmp / "png_out")], check=True)
        video = [f.rgb for f in frames(tmp / "clip_denoised.mp4")]
        pngs = [cv2.imread(str(p))[:, :, ::-1] for p in sorted((tmp / "png_out").glob("*.png"))]
        noisy = [f.rgb for f in frames(tmp / "clip.mp4")]
        result = {
            "frames": len(video), "size": args.size, "sigma": args.sigma, "crf": args.crf, "chroma": args.chroma, "out_chroma": args.out_chroma, "steady": not args.no_steady,
            "psnr_noisy": float(np.mean([psnr(a, b) for a, b in zip(noisy, clean)])),
            "psnr_video": float(np.mean([psnr(a, b) for a, b in zip(video, clean)])),
            "psnr_frames": float(np.mean([psnr(a, b) for a, b in zip(pngs, clean)])),
            "flicker_video": flicker(video, clean), "flicker_frames": flicker(pngs, clean),
            "audio_identical": audio_packets(tmp / "clip.mp4") == audio_packets(tmp / "clip_denoised.mp4"),
            "s_per_frame": seconds / len(video),
        }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
