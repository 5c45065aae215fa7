"""Copy a training run's EMA weights into the package as a shipped model, with its model card.

    python benchmarks/ship.py runs/denoise denoise --command "vitrestore train configs/denoise.yaml" \
        --results bench_out/denoise.json

The card (in the safetensors metadata and as vitrestore/shipped/<name>.md) records the training
data, command, steps, final validation and the benchmark lines measured for this file.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from vitrestore.weights import load_weights, render_card, save_weights

SHIPPED = Path(__file__).resolve().parent.parent / "vitrestore" / "shipped"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--command", required=True, help="the command that trained it")
    ap.add_argument("--results", type=Path, help="benchmark JSON (lines under 'card_lines')")
    ap.add_argument("--only", default="", help="keep only the benchmark lines that start with this text "
                    "(one results file for several models, e.g. styles)")
    ap.add_argument("--notes", default="")
    ap.add_argument("--recipe", default=None, help="the model's whole recipe (default: configs/shipped/NAME.yaml, "
                    "which must exist: tests/test_recipes.py checks it against the weights)")
    args = ap.parse_args()
    state, config, card = load_weights(args.run / "weights.safetensors")
    params = sum(v.numel() for v in state.values())
    lines = []
    if args.results and args.results.is_file():
        lines = [line for line in json.loads(args.results.read_text()).get("card_lines", [])
                 if line.startswith(args.only)]
    val = card.get("validation", {})
    if val and not lines:
        lines = [f"validation (held-out training crops, degraded as in training by task "
                 f"{config.get('task', '?')}): PSNR {val.get('val_psnr', 0):.2f} dB at step {val.get('step')}"]
    recipe = args.recipe or f"configs/shipped/{args.name}.yaml"
    if not (SHIPPED.parent.parent / recipe).is_file():
        raise SystemExit(f"error: {recipe}: no such recipe (write the model's stages there first)")
    card = {**card, "name": args.name, "parameters": params, "command": args.command, "metrics": lines,
            "notes": args.notes, "recipe": recipe}
    save_weights(SHIPPED / f"{args.name}.safetensors", state, config, card)
    (SHIPPED / f"{args.name}.md").write_text(render_card(args.name, config, card))
    print(f"shipped {args.name}: {params:,} parameters, {card['steps']} steps")


if __name__ == "__main__":
    main()
