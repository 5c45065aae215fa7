"""`vitrestore stylize`, declared once (vitrestore/command.py): the style (which model) and the
strength. Imports no torch: `vitrestore --help` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitrestore.command import Command, Offer, Plan, Studio
from vitrestore.io.formats import IMAGE_SUFFIXES
from vitrestore.request import option


def style_model(style: str) -> str:
    """The model for `stylize --style STYLE`: a shipped style name or a weights file."""
    path = Path(style).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"{style}: is an image, not a style model; learn it first: vitrestore train "
                         f"configs/stylize.yaml --set task_options.style_image={style} --set train.out=runs/{path.stem}")
    return style if path.suffix == ".safetensors" or path.exists() else f"style-{style}"


@dataclass(frozen=True)
class StyleRequest:
    strength: float | None = option(None, lo=0, hi=1, step=0.05, help="Blend: 0 = the photo, 1 = fully stylised "
                                    "[the model's default, 1].")
    noise: Any = option(None, kind="image", help="The noise map (B, 1, H, W) strokes start from, for models trained "
                                                 "with task_options.noise (default: drawn for the whole image, seeded).")


@dataclass(frozen=True)
class StyleInputs:
    style: str | None = option(None, required=True,
                               help="A shipped style name (`vitrestore models` lists style-NAME models) or a "
                                    ".safetensors file trained with configs/stylize.yaml.")


def plan(inputs: StyleInputs, request: dict, paths: tuple[Path, ...]) -> Plan:
    def check(model) -> None:
        if model.task.name != "stylize":
            raise ValueError(f"{inputs.style}: not a style model (it is a {model.task.name} model)")

    return Plan(style_model(inputs.style), request, check=check)


@dataclass(frozen=True)
class StyleStudio:
    style: str | None = option(None, choices=(), required=True, help="A shipped style.")


def studio_plan(options: StyleStudio, request: dict, offer: Offer) -> tuple[Path, dict]:
    return offer.shipped(f"style-{options.style}"), request


COMMAND = Command(
    task="stylize", implementation="style_transfer:StyleTransfer", request=StyleRequest, inputs=StyleInputs,
    plan=plan, studio=Studio("Stylize", studio_plan, StyleStudio, offered={"style": "styles"}, preview=True, order=4),
    help="""Repaint photos in the style of a painting.

    Writes <stem>_<style>.<ext> beside each input (e.g. photo_starry-night.png).
    """)
