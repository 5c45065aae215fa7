"""Resume and memory benchmark for clips (issue 33), on a clip made from a still photo
(bench_video.make_clip: a pan and zoom, fresh noise each frame, a tone).

    python benchmarks/bench_video_resume.py ../shared/data/Kodak24/kodim23.png --frames 96 --fps 16 \\
        --size 320x180 --json bench_out/video_resume.json
    python benchmarks/bench_video_resume.py photo.png --memory 16,64 --size 1920x1080 --fps 8

Resume (default): `vitrestore denoise clip.mp4` runs once uninterrupted; then again, killed
with SIGKILL at `--kill` (0.4) of the first run's wall time, and rerun to the end. Reports each
run's CPU time (user + system, of the command's process), the rerun's share of the full run's,
the frames the rerun processed, and whether the rerun's output has the same bytes as the
uninterrupted run's.

Memory (--memory N,M,...): the command's peak resident memory (ru_maxrss) on clips of N, M, ...
frames, each a fresh process: a streamed clip's memory does not grow with its length. Also
the seconds a frame at this size (the model's start excluded: the difference of the two
lengths' wall times over their difference in frames).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_video import make_clip  # noqa: E402


def command(clip: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vitrestore", "denoise", "-q", str(clip), "-o", str(out)]


def run(cmd: list[str], kill_after: float | None = None) -> dict:
    """Run `cmd`; SIGKILL it after `kill_after` s. Its wall time, CPU time and peak memory."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    if kill_after is not None:
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss / 1024, "exit": proc.returncode}


def resume(args, tmp: Path) -> dict:
    clip = tmp / "clip.mp4"
    make_clip(args.photo, clip, args.frames, args.size, args.sigma, fps=args.fps)
    full = run(command(clip, tmp / "whole.mp4"))
    killed = run(command(clip, tmp / "out.mp4"), kill_after=args.kill * full["wall_s"])
    parts = tmp / ".out.mp4.parts"
    kept = sorted(p.name for p in parts.glob("piece-*")) if parts.exists() else []
    rerun = run(command(clip, tmp / "out.mp4"))
    piece = max(16, args.fps)  # batch/clip.py piece_frames: a second, at least 16 frames
    redone = args.frames - len(kept) * piece + (2 if kept else 0)  # (+ the steady window before the first)
    return {"frames": args.frames, "fps": args.fps, "size": f"{args.size[0]}x{args.size[1]}",
            "full": full, "killed": killed, "pieces_kept": len(kept), "rerun": rerun,
            "rerun_cpu_share": rerun["cpu_s"] / full["cpu_s"], "rerun_frames_share": redone / args.frames,
            "identical": (tmp / "out.mp4").read_bytes() == (tmp / "whole.mp4").read_bytes(),
            "left_behind": sorted(p.name for p in tmp.iterdir() if p.name.startswith("."))}


def memory(args, tmp: Path) -> dict:
    runs = {}
    for n in args.memory:
        clip = tmp / f"clip{n}.mp4"
        make_clip(args.photo, clip, n, args.size, args.sigma, fps=args.fps)
        runs[n] = run(command(clip, tmp / f"out{n}.mp4"))
        clip.unlink()
        print(n, runs[n], flush=True)
    lo, hi = min(args.memory), max(args.memory)
    return {"size": f"{args.size[0]}x{args.size[1]}", "fps": args.fps, "runs": runs,
            "s_per_frame": (runs[hi]["wall_s"] - runs[lo]["wall_s"]) / (hi - lo)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photo", type=Path)
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--fps", type=int, default=16)
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--sigma", type=float, default=25)
    ap.add_argument("--kill", type=float, default=0.4, help="kill at this share of the full run's wall time")
    ap.add_argument("--memory", help="frame counts, comma-separated: the memory benchmark instead")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.size = tuple(int(v) for v in args.size.split("x"))
    args.memory = [int(n) for n in args.memory.split(",")] if args.memory else None
    with tempfile.TemporaryDirectory() as tmp:
        result = memory(args, Path(tmp)) if args.memory else resume(args, Path(tmp))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
