"""Self-describing weights: safetensors files whose metadata carry the model config and a
model card, so a model is rebuilt from the file alone. Shipped weights are package data in
`vitrestore/shipped/` and are read with importlib.resources (never downloaded).
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from safetensors import SafetensorError as SafetensorsError

from .io.atomic import write_atomic

if TYPE_CHECKING:
    import torch
# torch is imported where tensors are made, not here: `vitrestore models` and `--help` read
# metadata only and start without it

SUFFIX = ".safetensors"


class WeightsError(ValueError):
    pass


def save_weights(path: str | Path, state: dict[str, torch.Tensor], config: dict, card: dict) -> None:
    """Write weights atomically (temporary file, then rename) with config and card as metadata."""
    from safetensors.torch import save as safetensors_bytes  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    write_atomic(path, safetensors_bytes(tensors, metadata={"config": json.dumps(config), "card": json.dumps(card)}))


TASK_PREFIX = "task."  # weights-file keys of the task's state (the rest are the generator's)


def split_task_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A weights file's tensors -> (the generator's, the task's without the prefix)."""
    n = len(TASK_PREFIX)
    return ({k: v for k, v in state.items() if not k.startswith(TASK_PREFIX)},
            {k[n:]: v for k, v in state.items() if k.startswith(TASK_PREFIX)})


def shipped_dir():
    return resources.files("vitrestore") / "shipped"


def shipped_models() -> list[str]:
    """Names of the models that ship inside the package."""
    return sorted(p.name[: -len(SUFFIX)] for p in shipped_dir().iterdir() if p.name.endswith(SUFFIX))


def resolve(name_or_path: str | Path) -> Path:
    """A shipped model name ('denoise') or a path to a .safetensors file -> the file path."""
    p = Path(name_or_path).expanduser()
    if p.suffix == SUFFIX or p.exists():
        if not p.is_file():
            raise WeightsError(f"{p}: weights file not found")
        return p
    candidate = shipped_dir() / f"{name_or_path}{SUFFIX}"
    if not candidate.is_file():
        raise WeightsError(f"unknown model {str(name_or_path)!r} (shipped: {', '.join(shipped_models()) or 'none'})")
    return Path(str(candidate))


def read_metadata(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "numpy") as f:  # metadata only: no tensor is read, torch is not imported
            meta = f.metadata() or {}
        config, card = json.loads(meta["config"]), json.loads(meta.get("card", "{}"))
    except KeyError:
        raise WeightsError(f"{path}: not a vitrestore weights file (no config in its metadata)") from None
    except (SafetensorsError, json.JSONDecodeError, OSError) as exc:
        raise WeightsError(f"{path}: not a vitrestore weights file ({str(exc).strip() or type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: not a vitrestore weights file (its config metadata is a "
                           f"{type(config).__name__}, not a mapping)")
    return config, card if isinstance(card, dict) else {}


def load_weights(name_or_path: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict[str, Any]]:
    """(state_dict, config mapping, model card) from a shipped name or a file path."""
    import torch  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    path = resolve(name_or_path)
    config, card = read_metadata(path)
    try:
        state = load_file(str(path))
    except (SafetensorsError, OSError) as exc:
        raise WeightsError(f"{path}: cannot read weights ({exc})") from None
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{path}: tensor {name} holds NaN or infinite values (broken weights)")
    return state, config, card


def render_card(name: str, config: dict, card: dict) -> str:
    """A model card in Markdown from a weights file's config and card metadata."""
    data = config.get("data", {})
    val = card.get("validation") or {}
    lines = [f"# Model card: `{name}`", "",
             f"- task: {config.get('task')} {json.dumps(config.get('task_options') or {})}",
             f"- parameters: {card.get('parameters', 0):,}",
             f"- training data: {', '.join(data.get('train') or [])}"
             + (f" (inputs paired from {data['input']})" if data.get("input") else "")
             + (f" (held out: last {data['val_holdout']} files)" if data.get("val_holdout") else ""),
             f"- command: `{card.get('command') or '(not recorded)'}`",
             *([f"- recipe: `{card['recipe']}` (every stage; `vitrestore train {card['recipe']}` retrains it)"]
               if card.get("recipe") else []),
             f"- steps: {card.get('steps')} (batch {data.get('batch')}, crops {data.get('crop')} px)",
             "- final validation: " + (", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in val.items()) or "none")]
    adapted = card.get("adapted")
    if isinstance(adapted, dict):  # an --adapt-save file: what it was fine-tuned on
        lines.append(f"- adapted (--adapt) from `{adapted.get('base')}` (generator sha256 "
                     f"{str(adapted.get('base_digest'))[:12]}...) on {adapted.get('images')} image(s), "
                     f"{adapted.get('megapixels')} MP: {adapted.get('steps')} steps, {adapted.get('seconds')} s, "
                     f"{adapted.get('objective')}; self-check {adapted.get('score_base')} -> "
                     f"{adapted.get('score_adapted')}")
    metrics = card.get("metrics") or []
    if metrics:
        lines += ["", "## Measured", ""] + [f"- {m}" for m in metrics]
    if card.get("notes"):
        lines += ["", card["notes"]]
    return "\n".join(lines) + "\n"
