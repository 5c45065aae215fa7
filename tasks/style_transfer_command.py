"""`vitrestore stylize`, declared once (vitrestore/command.py): the style (which model) and the
strength. Imports no torch: `vitrestore --help` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitrestore.command import Command, Offer, Plan, Studio
from vitrestore.commands import style_model
from vitrestore.request import option


@dataclass(frozen=True)
class StyleRequest:
    strength: float | None = option(None, lo=0, hi=1, help="Blend: 0 = the photo, 1 = fully stylised "
                                    "[the model's default, 1].")


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
