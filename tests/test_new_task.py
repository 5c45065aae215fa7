"""A task is declared once: a new task is its own modules in tasks/ (here written into a fresh
folder on the tasks package's path, as a user's checkout would hold them), and its CLI command,
options, checks, Python API and studio entry (GET /api/tasks, its jobs' checks) appear without an
edit to vitrestore/cli.py, the studio or the engine."""
import importlib
import sys
import textwrap

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import smooth_image
from vitrestore import cli, tasks
from vitrestore.weights import load_weights, save_weights

DECLARATION = '''
"""`vitrestore brighten`: a test task (the denoiser, then a gain)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitrestore.command import Command, Offer, Plan, Studio, own_task
from vitrestore.request import option


@dataclass(frozen=True)
class BrightenRequest:
    gain: float | None = option(None, lo=0.5, hi=2, help="Multiply the result by this.")


@dataclass(frozen=True)
class BrightenInputs:
    model: str | None = option(None, required=True, help="A brighten weights file.")


def plan(inputs: BrightenInputs, request: dict, paths: tuple[Path, ...]) -> Plan:
    return Plan(inputs.model, request, check=own_task("brighten", inputs.model))


@dataclass(frozen=True)
class BrightenStudio:
    look: str = option("warm", choices=("warm", "cool"), help="Which shipped brightener.")


def studio_plan(options: BrightenStudio, request: dict, offer: Offer):
    return offer.shipped(f"brighten-{options.look}"), request


COMMAND = Command(task="brighten", implementation="brighten:Brighten", request=BrightenRequest,
                  inputs=BrightenInputs, plan=plan, studio=Studio("Brighten", studio_plan, BrightenStudio, order=5),
                  help="""Denoise, then brighten.

    Writes <stem>_brightened.<ext> beside each input.
    """)
'''

IMPLEMENTATION = '''
from __future__ import annotations

from vitrestore.tasks.denoise import Denoise

from .brighten_command import COMMAND


class Brighten(Denoise):
    name = COMMAND.task
    Request = COMMAND.request
    output_suffix = "brightened"

    def postprocess(self, output, image, gain=None, **request):
        return (super().postprocess(output, image, **request) * (1.0 if gain is None else gain)).clamp(0, 1)
'''


@pytest.fixture
def brighten(tmp_path, tiny_weights, monkeypatch):
    """The brighten task's two modules on the tasks package's path, and a weights file of it."""
    folder = tmp_path / "more_tasks"
    folder.mkdir()
    (folder / "brighten_command.py").write_text(textwrap.dedent(DECLARATION))
    (folder / "brighten.py").write_text(textwrap.dedent(IMPLEMENTATION))
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(folder)])
    for cache in (tasks.commands, tasks.get_task, cli._task_commands):
        cache.cache_clear()
    state, config, card = load_weights(tiny_weights)
    weights = tmp_path / "brighten.safetensors"
    save_weights(weights, state, {**config, "task": "brighten"}, card)
    yield weights
    for cache in (tasks.commands, tasks.get_task, cli._task_commands):
        cache.cache_clear()
    cli.main.commands.pop("brighten", None)  # the group keeps the commands it has made
    for name in ("vitrestore.tasks.brighten", "vitrestore.tasks.brighten_command"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


def test_a_new_task_gets_its_command_options_and_checks(brighten, tmp_path):
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), smooth_image(np.random.default_rng(3), 32, 40))
    runner = CliRunner()
    listed = runner.invoke(cli.main, ["--help"])
    assert "brighten  Denoise, then brighten." in listed.output
    helped = runner.invoke(cli.main, ["brighten", "--help"])
    assert helped.exit_code == 0 and "--gain" in helped.output and "0.5<=x<=2" in helped.output
    assert "--model" in helped.output and "--tile" in helped.output and "--adapt" not in helped.output

    refused = runner.invoke(cli.main, ["brighten", str(photo), "--model", str(brighten), "--gain", "2.5"])
    assert refused.exit_code == 2 and "--gain" in refused.output and not (tmp_path / "p_brightened.png").exists()
    missing = runner.invoke(cli.main, ["brighten", str(photo)])
    assert missing.exit_code == 2 and "--model" in missing.output

    outputs = {}
    for gain in ("1", "1.5"):
        out = tmp_path / f"g{gain}.png"
        done = runner.invoke(cli.main, ["brighten", str(photo), "--model", str(brighten), "--gain", gain, "-o", str(out),
                                        "-q"])
        assert done.exit_code == 0, done.output
        outputs[gain] = cv2.imread(str(out)).astype(np.float64)
    brighter = outputs["1.5"][outputs["1"] < 150]  # not clipped at 255 by the gain
    assert np.abs(brighter - 1.5 * outputs["1"][outputs["1"] < 150]).max() <= 1.0  # the request reached the task

    # the Python API checks the new task's request by its declaration too
    model = tasks.load_model(brighten, device="cpu")
    with pytest.raises(ValueError, match="gain"):
        model.run_arrays([np.zeros((8, 8, 3), np.uint8)], gain=3.0)
    with pytest.raises(TypeError, match="did you mean 'gain'"):
        model.run_arrays([np.zeros((8, 8, 3), np.uint8)], gian=1.0)

    # another task's command refuses its model
    other = runner.invoke(cli.main, ["denoise", str(photo), "--model", str(brighten)])
    assert other.exit_code == 2 and "not a model for `vitrestore denoise`" in other.output


def test_a_new_task_is_in_the_studio(brighten):
    from test_studio_api import PHOTO, png, start
    from vitrestore.studio.options import JobPlanner

    server, client = start()
    try:
        studio = server.studio
        studio.planner.shipped = lambda name: brighten if name == "brighten-warm" else JobPlanner.shipped(name)
        status, schema, _ = client.request("GET", "/api/tasks")
        entry = schema["tasks"]["brighten"]
        assert status == 200 and list(schema["tasks"])[-2:] == ["brighten", "restore"] and entry["label"] == "Brighten"
        assert [(o["name"], o["type"], o["min"], o["max"]) for o in entry["options"]] == [
            ("gain", "number", 0.5, 2), ("look", "choice", None, None)]
        _, img, _ = client.upload(png(PHOTO), "photo.png")
        for options, words in (({"gain": 2.5}, "option 'gain' must be a number from 0.5 to 2"),
                               ({"look": "hot"}, "option 'look' must be one of warm, cool"),
                               ({"gian": 1}, 'unknown option "gian"')):
            status, body, _ = client.job("brighten", img["id"], **options)
            assert status == 400 and words in body["error"], body
        status, job, _ = client.job("brighten", img["id"], gain=1.5)
        assert status == 202, job
        job = client.wait(job["id"])
        assert job["status"] == "done", job
        _, info, _ = client.request("GET", f"/api/images/{job['result']}")
        assert info["name"] == "photo_brightened.png"
    finally:
        server.close()
