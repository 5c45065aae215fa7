"""`vitrestore restore`, declared once (vitrestore/command.py): any trained model (e.g. a task
defined in YAML), by its weights file. Imports no torch: `vitrestore --help` reads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitrestore.command import Command, Offer, Plan, Studio
from vitrestore.request import option


@dataclass(frozen=True)
class RestoreRequest:
    mask: Any = option(None, kind="image", help="The area to restore (B, 1, H, W), 1 = restore: for models "
                                                "trained with task_options.condition: mask.")


@dataclass(frozen=True)
class RestoreInputs:
    weights: str | None = option(None, required=True,
                                 help="A .safetensors weights file from `vitrestore train` (or a shipped name).")


def plan(inputs: RestoreInputs, request: dict, paths: tuple[Path, ...]) -> Plan:
    return Plan(inputs.weights, request)  # any task's model runs here


@dataclass(frozen=True)
class RestoreStudio:
    model: str | None = option(None, choices=(), required=True, help="A weights file of the studio's --models folder.")


def studio_plan(options: RestoreStudio, request: dict, offer: Offer) -> tuple[Path, dict]:
    return offer.models_dir / options.model, request  # one of offer.model_files: the studio checked it


COMMAND = Command(
    task="restore", implementation="restore:Restore", request=RestoreRequest, inputs=RestoreInputs, plan=plan,
    studio=Studio("Restore (trained model)", studio_plan, RestoreStudio, offered={"model": "model_files"}, order=9),
    help="""Run any trained model (e.g. a task defined in YAML) on images or folders.

    Writes <stem>_<name>.<ext> beside each input, where <name> comes from the model's config.
    """)
