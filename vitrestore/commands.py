"""Which model a command runs, from the user's choices: shared by the CLI and the studio, so a
name means the same model in both. Plain functions of strings; no model is loaded here."""
from __future__ import annotations

from pathlib import Path

from .io.formats import IMAGE_SUFFIXES

UPSCALE_KINDS = ("classic", "real")


def upscale_model(scale: str | int | None, kind: str = "classic") -> str:
    """The model for `upscale --scale S --model KIND` (KIND classic, real or a weights file)."""
    if kind not in UPSCALE_KINDS:
        return kind
    scale = str(scale or 4)
    if scale not in ("2", "4"):
        raise ValueError(f"--scale must be 2 or 4, got {scale}")
    if kind == "real" and scale != "4":
        raise ValueError("--model real is x4 only (use --outscale for other sizes)")
    return f"upscale-x{scale}" + ("-real" if kind == "real" else "")


def style_model(style: str) -> str:
    """The model for `stylize --style STYLE`: a shipped style name or a weights file."""
    path = Path(style).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"{style}: is an image, not a style model; learn it first: vitrestore train "
                         f"configs/stylize.yaml --set task_options.style_image={style} --set train.out=runs/{path.stem}")
    return style if path.suffix == ".safetensors" or path.exists() else f"style-{style}"
