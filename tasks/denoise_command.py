"""`vitrestore denoise`, declared once (vitrestore/command.py): the request, the model option.
Imports no torch: `vitrestore --help` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitrestore.command import Command, Offer, Plan, Studio, own_task
from vitrestore.request import option


@dataclass(frozen=True)
class DenoiseRequest:
    sigma: float | None = option(None, lo=0, hi=255, unit="0-255 scale", step=1,
                                 help="Noise level (0-255 scale) if known; blind when omitted. On camera photos it "
                                      "works as a strength: a larger level removes more of their coarse grain "
                                      "(README: 30-50).")


@dataclass(frozen=True)
class DenoiseInputs:
    model: str = option("denoise", help="Shipped model name or a .safetensors weights file.")


def plan(inputs: DenoiseInputs, request: dict, paths: tuple[Path, ...]) -> Plan:
    return Plan(inputs.model, request, check=own_task("denoise", inputs.model))


def studio_plan(options, request: dict, offer: Offer) -> tuple[Path, dict]:
    return offer.shipped("denoise"), request


COMMAND = Command(
    task="denoise", implementation="denoise:Denoise", request=DenoiseRequest, inputs=DenoiseInputs, plan=plan,
    # 2 = the image and its mirror averaged (README, Denoising: --ensemble 1 is 2x faster, 0.08 dB less)
    ensemble=2, adapt=True, studio=Studio("Denoise", studio_plan, preview=True, order=1),
    help="""Remove noise from images or folders of images.

    Writes <stem>_denoised.<ext> beside each input, or mirrors folders under -o.
    """)
