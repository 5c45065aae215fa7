"""`vitrestore upscale`, declared once (vitrestore/command.py): the scale and kind (which model)
and the final size. Imports no torch: `vitrestore --help` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitrestore.command import Command, Offer, Plan, Rule, Studio
from vitrestore.request import NoRequest, option

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


@dataclass(frozen=True)
class UpscaleInputs:
    scale: str | None = option(None, choices=("2", "4"), help="Upscaling factor of the network [4].")
    model: str = option("classic", help="classic (sharp, for clean images), real (noisy/JPEG'd real photos), "
                                        "or a .safetensors file.")
    outscale: float | None = option(None, lo=0.05, hi=16,
                                    help="Final size as a factor of the input (the network output is resized to it).")


def plan(inputs: UpscaleInputs, request: dict, paths: tuple[Path, ...]) -> Plan:
    scale, kind, outscale = inputs.scale, inputs.model, inputs.outscale
    name = upscale_model(scale, kind)

    def check(model) -> None:
        if model.scale == 1:
            raise ValueError(f"{kind}: not a super-resolution model (it keeps the size)")
        if scale is not None and model.scale != int(scale):
            raise ValueError(f"{kind}: this model enlarges x{model.scale}, not x{scale}")

    def final_size(image) -> tuple[int, int]:  # (W, H) with --outscale
        h, w = image.pixels.shape[:2]
        return max(1, round(w * outscale)), max(1, round(h * outscale))

    def finish(result, image):
        import cv2  # noqa: PLC0415  (not for --help)
        import numpy as np  # noqa: PLC0415

        size = final_size(image)  # cv2 wants (W, H)
        shrink = size[0] < result.shape[1]
        out = cv2.resize(result, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        return out[:, :, None] if out.ndim == 2 else np.ascontiguousarray(out)

    if outscale is None:
        return Plan(name, request, check=check)
    return Plan(name, request, suffix=f"x{outscale:g}", check=check, finish=finish, out_size=final_size)


@dataclass(frozen=True)
class UpscaleStudio:
    scale: int = option(4, choices=(2, 4), help="Enlargement factor.")
    kind: str = option("classic", choices=("classic", "real"),
                       help="classic: clean inputs; real: real photos (blur, noise, JPEG), x4 only.")


def studio_plan(options: UpscaleStudio, request: dict, offer: Offer) -> tuple[Path, dict]:
    return offer.shipped(f"upscale-x{options.scale}" + ("-real" if options.kind == "real" else "")), request


COMMAND = Command(
    task="upscale", implementation="super_resolution:Upscale", request=NoRequest, inputs=UpscaleInputs, plan=plan,
    adapt=True, studio=Studio("Upscale", studio_plan, UpscaleStudio, order=2,
                                          rules=(Rule("kind", "real", "scale", (4,), "kind 'real' is x4 only (scale 4)"),)),
    help="""Enlarge images x2 or x4 (super-resolution).

    Writes <stem>_x<scale>.<ext> beside each input (or _x<outscale> with --outscale).
    """)
