"""The page builds its task list and option controls from GET /api/tasks: a studio whose task
declarations (tasks/<task>_command.py, changed copies) offer upscale x3, another range for `adapt`
and two options the page has never heard of shows exactly those, and a job run through the page
carries scale 3 (which the studio's check then accepts). Ranges a task's Request declares (sigma,
strength) are changed in the served schema only: the page side. Skipped like the other browser
tests when chromium is missing (never in CI)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from test_studio_api import start
from test_studio_browser import MISSING, chrome, open_photo, wait_state
import vitrestore.studio.options as studio_options
from vitrestore.request import option
from vitrestore.studio.options import JobPlanner

pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"no {', '.join(MISSING)}: apt-get install chromium chromium-driver")


@dataclasses.dataclass(frozen=True)
class UpscaleX3:
    scale: int = option(4, choices=(2, 3, 4), help="Enlargement factor.")
    kind: str = option("classic", choices=("classic", "real"), help="classic or real.")


@dataclasses.dataclass(frozen=True)
class RestoreMore:
    model: str | None = option(None, choices=(), required=True, help="A weights file.")
    passes: int = option(2, lo=1, hi=8, help="How many passes.")
    sharpen: bool | None = option(None, choices=(False, True), help="Sharpen the result.")


def _with_options(command, options):
    return dataclasses.replace(command, studio=dataclasses.replace(command.studio, options=options))


@pytest.fixture
def page(monkeypatch, tiny_upscale_weights):
    monkeypatch.setattr(studio_options, "ADAPT_SECONDS", (10, 120))
    server, _ = start()
    studio = server.studio
    commands = studio.planner.commands
    commands["upscale"] = _with_options(commands["upscale"], UpscaleX3)
    commands["restore"] = _with_options(commands["restore"], RestoreMore)
    # x3 runs the tiny x2 test model: the job only has to run (its options are what is checked)
    studio.planner.shipped = lambda name: tiny_upscale_weights if name == "upscale-x3" else JobPlanner.shipped(name)
    served = studio.planner.schema

    def schema():  # a task's own ranges (its Request's), changed as served
        out = served()
        for task, name, key, value in (("denoise", "sigma", "max", 50), ("stylize", "strength", "max", 0.5)):
            next(o for o in out["tasks"][task]["options"] if o["name"] == name)[key] = value
        return out

    studio.planner.schema = schema
    driver = chrome()
    try:
        driver.get(server.url)
        yield driver, studio, served()
    finally:
        driver.quit()
        server.close()


@pytest.mark.slow  # a browser
def test_browser_the_page_builds_its_controls_from_the_schema(page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, studio, schema = page
    help_of = {(task, o["name"]): o["help"] for task, t in schema["tasks"].items() for o in t["options"]}
    find = lambda i: driver.find_element(By.ID, i)  # noqa: E731
    attrs = lambda el, *keys: [el.get_attribute(k) for k in keys]  # noqa: E731
    Image.fromarray(smooth_image(np.random.default_rng(40), 48, 64)).save(tmp_path / "small.png")
    open_photo(driver, tmp_path / "small.png")  # "ready": the controls are built
    # the task list: the schema's tasks in its order, by their labels
    tasks = Select(find("task")).options
    assert [o.get_attribute("value") for o in tasks] == list(schema["tasks"])
    assert [o.text for o in tasks] == [t["label"] for t in schema["tasks"].values()]
    assert list(schema["tasks"]) == ["denoise", "upscale", "inpaint", "repair", "stylize", "restore"]

    # denoise: the level slider takes the schema's max where it is under the page's 75, and its help
    slider = find("sigma")
    assert attrs(slider, "type", "min", "max", "step") == ["range", "0", "50", "1"]
    assert find("sigma-label").get_attribute("title").startswith(help_of["denoise", "sigma"])
    # adapt (denoise, upscale, inpaint: one control): its seconds' range from the schema
    seconds = find("adapt-seconds")
    assert attrs(seconds, "type", "min", "max") == ["number", "10", "120"] and seconds.get_attribute("value") == "30"
    assert find("adapt-label").get_attribute("title") == help_of["denoise", "adapt"]

    # upscale: a select of the schema's choices, its default chosen
    Select(find("task")).select_by_value("upscale")
    scale, kind = Select(find("scale")), Select(find("kind"))
    assert [o.get_attribute("value") for o in scale.options] == ["2", "3", "4"]
    assert [o.text for o in scale.options] == ["x2", "x3", "x4"] and scale.first_selected_option.text == "x4"
    assert [o.get_attribute("value") for o in kind.options] == ["classic", "real"]
    assert kind.first_selected_option.get_attribute("value") == "classic"
    assert find("adapt-seconds").is_displayed()
    # the adapt seconds' message names the schema's range
    find("adapt").click()
    seconds.clear()
    find("run").click()
    WebDriverWait(driver, 10).until(lambda d: "(10 to 120)" in find("message").text)
    assert not studio.jobs.jobs
    find("adapt").click()  # off again: adapt 0

    # the schema's rule: kind real is x4 only, so the other scales are disabled while it is chosen
    scale.select_by_value("2")
    kind.select_by_value("real")
    assert [o.is_enabled() for o in scale.options] == [False, False, True]
    assert scale.first_selected_option.get_attribute("value") == "4"
    kind.select_by_value("classic")
    assert all(o.is_enabled() for o in scale.options)

    # a job run through the page carries the schema's new choice, as a number
    scale.select_by_value("3")
    find("run").click()
    WebDriverWait(driver, 30).until(lambda d: studio.jobs.jobs or "option" in find("message").text)  # or refused
    assert [j.options for j in studio.jobs.jobs.values()] == [{"scale": 3, "kind": "classic", "adapt": 0}], \
        find("message").text
    assert wait_state(driver, "done", "error") == "done", find("message").text  # scale 3 accepted and run

    # stylize: the strength slider's max from the schema (the page's 1 is cut to it), the thumbnails its choices
    Select(find("task")).select_by_value("stylize")
    strength = find("strength")
    assert attrs(strength, "type", "min", "max", "value") == ["range", "0", "0.5", "0.5"]
    assert strength.get_attribute("step") == "0.05"  # the step its Request declares
    styles = [o for o in schema["tasks"]["stylize"]["options"] if o["name"] == "style"][0]["choices"]
    assert [b.get_attribute("data-style") for b in driver.find_elements(By.CSS_SELECTOR, "#styles .style")] == styles

    # restore: options the page has never heard of, shown by their type
    Select(find("task")).select_by_value("restore")
    passes, sharpen = find("passes"), find("sharpen")
    assert attrs(passes, "type", "min", "max", "value") == ["number", "1", "8", "2"] and passes.is_displayed()
    assert passes.find_element(By.XPATH, "..").get_attribute("title") == "How many passes."
    assert sharpen.get_attribute("type") == "checkbox" and sharpen.is_displayed()
    assert driver.execute_script("return document.getElementById('sharpen').indeterminate")  # null: the model's default
    assert not find("sigma").is_displayed() and not find("scale").is_displayed()
