"""Each task's request is declared once (its `Request`, vitrestore/request.py); the Python API's
checks come from it, and the CLI's options and the studio's checks must agree with it, down to
refusing a value just past each end of a range."""
import dataclasses
import json

import click
import click.testing
import pytest
import torch

from vitrestore import request as requests
from vitrestore.cli import main
from vitrestore.request import UnknownOption
from vitrestore.studio.errors import ApiError
from vitrestore.studio.options import JobPlanner
from vitrestore.tasks import TASKS, commands


REQUIRED = {"stylize": ["--style", "starry-night"], "restore": ["--weights", "w.safetensors"]}  # each command's
# required inputs


def value_fields(task: str):
    return [f for f in dataclasses.fields(TASKS[task].Request) if f.metadata["kind"] == "value"]


def cases():
    """(task, field) for every user option of every task."""
    return [(t, f.name) for t in TASKS for f in value_fields(t)]


def test_every_request_is_declared_with_help_and_bounds():
    assert cases(), "no task declares an option"
    for name, cls in TASKS.items():
        req = cls.Request
        assert dataclasses.is_dataclass(req) and req.__dataclass_params__.frozen, name
        for f in dataclasses.fields(req):
            m = f.metadata
            assert m["help"], f"{name}.{f.name} has no help"
            if m["kind"] == "value":  # a number has a range, anything else a closed set
                assert (m["lo"] is not None and m["hi"] is not None) or m["choices"], f"{name}.{f.name}"
        json.dumps(requests.schema(req))  # plain data: what a client can be served


@pytest.mark.parametrize("task,key", cases())
def test_the_cli_option_is_the_request_field(task, key):
    field = next(f for f in value_fields(task) if f.name == key)
    m = field.metadata
    param = next(p for p in main.get_command(None, task).params if p.name == key)
    if m["lo"] is not None:
        assert isinstance(param.type, click.FloatRange), (task, key)
        assert (param.type.min, param.type.max) == (m["lo"], m["hi"]), (task, key)
    else:
        assert param.is_flag, (task, key)
    assert param.help == m["help"], (task, key)  # the same words
    # left out, the task gets the field's default (None: the model's own, e.g. inpaint's texture on)
    parsed = main.get_command(None, task).make_context(task, ["x.png"] + REQUIRED.get(task, []))
    assert parsed.params[key] == field.default, (task, key, parsed.params[key])


def _planner():
    return JobPlanner(commands(), ["starry-night"], None, lambda i: _Image())


@pytest.mark.parametrize("task,key", [c for c in cases() if c[1] != "texture"])
def test_a_value_just_past_a_range_is_refused_everywhere(task, key, tmp_path):
    m = next(f for f in value_fields(task) if f.name == key).metadata
    cls = TASKS[task]
    extra = {"stylize": {"style": "starry-night"}, "repair": {"mask": "m"}}.get(task, {})
    for bad, good in ((m["hi"] + 0.5, m["hi"]), (m["lo"] - 0.5, m["lo"])):
        with pytest.raises(ValueError, match=key):  # the Python API
            cls().check_request(**{key: bad})
        cls().check_request(**{key: good})
        if task in _planner().tasks and key in _planner().options(task):  # the studio
            with pytest.raises(ApiError, match=key):
                _planner().plan(task, {key: bad, **extra}, _Image())
            _planner().plan(task, {key: good, **extra}, _Image())
        result = click.testing.CliRunner().invoke(main, [task, str(tmp_path / "x.png"), f"--{key}", str(bad)]
                                                  + REQUIRED.get(task, []))
        assert result.exit_code == 2 and f"--{key}" in result.output, (task, key, result.output)


def test_unknown_keys_and_wrong_types_name_the_option():
    with pytest.raises(UnknownOption, match="did you mean 'sigma'"):
        TASKS["denoise"]().check_request(sigmaa=3)
    with pytest.raises(ValueError, match="texture must be True or False"):
        TASKS["inpaint"]().check_request(mask=torch.ones(1, 1, 8, 8), texture="yes")
    with pytest.raises(ValueError, match="check_cancel must be a function"):
        TASKS["inpaint"]().check_request(mask=torch.ones(1, 1, 8, 8), check_cancel=3)
    assert requests.maps(TASKS["inpaint"].Request) == ("mask",) and requests.maps(TASKS["denoise"].Request) == ()
    schema = {o["name"]: o for o in requests.schema(TASKS["inpaint"].Request)}
    assert schema["texture"]["type"] == "flag" and schema["mask"]["type"] == "image" and "check_cancel" not in schema


class _Image:  # what plan reads of an upload (inpaint's mask must match the image's size)
    width, height = 40, 30


def test_the_studio_schema_lists_exactly_what_a_job_takes_and_plan_keeps_to_it(tmp_path):
    planner = JobPlanner(commands(), ["starry-night"], tmp_path, lambda i: _Image())
    (tmp_path / "mine.safetensors").write_bytes(b"x")
    tasks = planner.schema()["tasks"]
    assert list(tasks) == list(planner.tasks) and set(tasks) == {t for t, c in commands().items() if c.studio}
    json.dumps(tasks)
    base = {"stylize": {"style": "starry-night"}, "restore": {"model": "mine.safetensors"}, "inpaint": {"mask": "m"},
            "repair": {"mask": "m"}}
    for task, entry in tasks.items():
        assert main.get_command(None, entry["command"]) is not None and [o["name"] for o in entry["options"]] != []
        assert [o["name"] for o in entry["options"]] == list(planner.options(task)), task
        for o in entry["options"]:
            assert o["help"], (task, o["name"])
            good = {**base.get(task, {})}
            if o["type"] == "number":  # just past the top (and the bottom: adapt's 0 means off) is refused
                planner.plan(task, {**good, o["name"]: o["max"]}, _Image())
                for bad in (o["max"] + 0.5, o["min"] - 0.5):
                    with pytest.raises(ApiError, match=o["name"]):
                        planner.plan(task, {**good, o["name"]: bad}, _Image())
            elif o["type"] == "flag":
                planner.plan(task, {**good, o["name"]: False}, _Image())
                with pytest.raises(ApiError, match=o["name"]):
                    planner.plan(task, {**good, o["name"]: "yes"}, _Image())
            elif o["type"] == "choice":
                for value in o["choices"]:
                    options = {**good, o["name"]: value}
                    if task == "upscale" and value == "real":
                        options["scale"] = 4
                    planner.plan(task, options, _Image())
                with pytest.raises(ApiError, match=o["name"]):
                    planner.plan(task, {**good, o["name"]: "no such choice"}, _Image())
    assert tasks["upscale"]["rules"] == [{"when": "kind", "value": "real", "then": "scale", "allowed": [4],
                                          "why": "kind 'real' is x4 only (scale 4)"}]
    with pytest.raises(ApiError, match="x4 only"):  # the rule the page is given is the one the studio checks
        planner.plan("upscale", {"kind": "real", "scale": 2}, _Image())
    assert next(o for o in tasks["stylize"]["options"] if o["name"] == "style")["choices"] == ["starry-night"]
    assert next(o for o in tasks["restore"]["options"] if o["name"] == "model")["choices"] == ["mine.safetensors"]


def test_get_api_tasks_serves_the_schema():
    from test_studio_api import start

    server, client = start()
    try:
        status, body, _ = client.request("GET", "/api/tasks")
        assert status == 200 and body == json.loads(json.dumps(server.studio.planner.schema()))
        sigma = next(o for o in body["tasks"]["denoise"]["options"] if o["name"] == "sigma")
        assert (sigma["type"], sigma["min"], sigma["max"], sigma["step"]) == ("number", 0, 255, 1)
    finally:
        server.close()


def _input_cases():
    """(task, field) for every command input of every task (vitrestore/command.py)."""
    from vitrestore.tasks import commands

    return [(t, f) for t, c in commands().items() for f in dataclasses.fields(c.inputs)]


@pytest.mark.parametrize("task,field", _input_cases(), ids=lambda v: getattr(v, "name", v))
def test_every_command_input_is_a_cli_option_with_its_range_and_help(task, field, tmp_path):
    m = field.metadata
    assert m["help"], (task, field.name)
    param = next(p for p in main.get_command(None, task).params if p.name == field.name)
    assert param.help == m["help"] and param.required == m["required"], (task, field.name)
    flag = "--" + field.name.replace("_", "-")
    rest = {"stylize": ["--style", "starry-night"], "restore": ["--weights", "x.safetensors"]}.get(task, [])
    rest = [a for i, a in enumerate(rest) if rest[i - (i % 2)] != flag]  # not the option under test twice
    runner = click.testing.CliRunner()
    if m["required"]:  # left out: refused, naming it
        result = runner.invoke(main, [task, str(tmp_path / "x.png")] + rest)
        assert result.exit_code == 2 and flag in result.output, (task, result.output)
    if m["lo"] is not None:  # just past each end: refused, naming it, before anything is read
        step = 1 if m["type"] == "int" else 0.5
        for bad in (m["hi"] + step, m["lo"] - step):
            result = runner.invoke(main, [task, str(tmp_path / "x.png"), flag, str(bad)] + rest)
            assert result.exit_code == 2 and flag in result.output, (task, bad, result.output)
    if m["choices"]:
        result = runner.invoke(main, [task, str(tmp_path / "x.png"), flag, "no-such-choice"] + rest)
        assert result.exit_code == 2 and flag in result.output, (task, result.output)


def test_every_task_is_declared_once_and_its_class_agrees():
    from vitrestore.tasks import commands, get_task

    assert set(commands()) == set(TASKS) and set(commands()) <= set(main.list_commands(None))
    for name, command in commands().items():
        cls = get_task(name)
        assert cls.name == name and cls.Request is command.request, name
        assert command.adapt == (cls.adapt_with is not None), name  # --adapt only where there is an objective


def test_a_plain_request_field_is_an_option_without_checks():
    """A Request field declared without option(): a value of no declared type, passed on unchecked."""
    @dataclasses.dataclass(frozen=True)
    class Plain:
        strength: float | None = None

    requests.check(Plain, "t", {"strength": 0.5})
    with pytest.raises(UnknownOption):
        requests.check(Plain, "t", {"strenght": 0.5})
