"""The studio's `adapt` option (issue 34, `--adapt` in the page): a job fine-tunes a copy of the
model on its own image first, reports steps as its progress and what happened as its note,
can be cancelled while adapting, and never changes the studio's cached base model. The
denoise task runs on the tiny test weights (no shipped model) for a few fixed steps."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_image
from studio_client import Client
from vitrestore.engine.adapt import AdaptSettings
from vitrestore.studio.options import JobPlanner
from vitrestore.studio.http import StudioServer
from vitrestore.studio.server import Studio
import vitrestore.tasks

torch.set_num_threads(1)


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


CLEAN = smooth_image(np.random.default_rng(5), 72, 96)
NOISY = np.clip(CLEAN + np.random.default_rng(6).normal(0, 20, CLEAN.shape), 0, 255).round().astype(np.uint8)


@pytest.fixture
def studio(tiny_weights):
    """A studio whose denoise model is the tiny test weights, adapting for `steps[0]` fixed steps."""
    studio = Studio(vitrestore.tasks, device="cpu")
    studio.planner.shipped = lambda name: tiny_weights if name == "denoise" else JobPlanner.shipped(name)
    steps = [3]
    studio.adapt_settings = lambda seconds: AdaptSettings(steps=steps[0])
    server = StudioServer(studio, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = Client(f"http://127.0.0.1:{server.server_address[1]}")
    yield studio, client, steps
    server.close()


def base_weights(studio: Studio, tiny_weights) -> dict[str, torch.Tensor]:
    model = studio._models[(str(tiny_weights), 2)]
    return {k: v.clone() for k, v in model.generator.state_dict().items()}


def test_an_adapted_job_reports_steps_and_its_note_and_leaves_the_base_alone(studio, tiny_weights):
    studio, c, _ = studio
    _, img, _ = c.upload(png(NOISY), "photo.png")
    status, plain, _ = c.job("denoise", img["id"])  # loads and caches the base model
    assert status == 202, plain
    plain = c.wait(plain["id"])
    assert plain["status"] == "done" and plain["note"] is None and plain["adapted"] is None
    before = base_weights(studio, tiny_weights)

    seen = []
    real = studio.jobs._run

    def watch(job):  # the progress the page polls, seen from the job itself at every step
        original = job.adapt_progress

        def step(done, total):
            original(done, total)
            seen.append(job.public()["progress"])
        job.adapt_progress = step
        return real(job)

    studio.jobs._run = watch
    status, job, _ = c.job("denoise", img["id"], adapt=30, sigma=None)
    assert status == 202, job
    job = c.wait(job["id"])
    assert job["status"] == "done", job
    assert [(p["stage"], p["done"], p["total"]) for p in seen] == [("adapt", k, 3) for k in (1, 2, 3)]
    assert job["progress"]["stage"] == "run" and job["progress"]["done"] == job["progress"]["total"] >= 1
    note = job["note"]
    assert isinstance(job["adapted"], bool) and len(note.splitlines()) == 1
    assert note.startswith("adapted: 3 steps" if job["adapted"] else "not adapted: "), note
    assert "3 steps" in note

    after = base_weights(studio, tiny_weights)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert list(studio._models) == [(str(tiny_weights), 2)]  # the copy is not cached
    assert studio._models[(str(tiny_weights), 2)].progress is None
    status, data, _ = c.request("GET", f"/api/images/{job['result']}/file")
    assert status == 200 and np.asarray(Image.open(io.BytesIO(data))).shape == NOISY.shape
    # the base still runs as before: the same output as the first job
    _, again, _ = c.job("denoise", img["id"], adapt=0)
    again = c.wait(again["id"])
    assert again["note"] is None
    first = c.request("GET", f"/api/images/{plain['result']}/file")[1]
    assert c.request("GET", f"/api/images/{again['result']}/file")[1] == first


def test_a_task_that_cannot_adapt_says_why(studio):
    studio, c, _ = studio
    _, img, _ = c.upload(png(CLEAN), "clean.png")  # noiseless: nothing to adapt to
    _, job, _ = c.job("denoise", img["id"], adapt=5)
    job = c.wait(job["id"])
    assert job["status"] == "done" and job["adapted"] is False
    assert job["note"].startswith("not adapted: ") and "noise" in job["note"], job["note"]


@pytest.mark.parametrize("task", ["denoise", "upscale", "inpaint"])
@pytest.mark.parametrize("value", [True, "30", -1, 601, 4, [30], {"seconds": 30}],
                         ids=["bool", "string", "negative", "over", "under", "list", "object"])
def test_bad_adapt_values_are_one_line_400s(studio, task, value):
    studio, c, _ = studio
    _, img, _ = c.upload(png(NOISY))
    options = {"adapt": value}
    if task == "inpaint":
        _, m, _ = c.upload(png(np.full((72, 96), 255, np.uint8)), "m.png")
        options["mask"] = m["id"]
    status, body, _ = c.job(task, img["id"], **options)
    assert status == 400, body
    assert body["error"].startswith(f"{task}: option 'adapt' must be a number of seconds from 5 to 600")
    assert len(body["error"].splitlines()) == 1
    assert not studio._models  # refused before any model loads


@pytest.mark.parametrize("task", ["stylize", "restore"])
def test_tasks_without_adaptation_refuse_the_option(studio, task):
    _, c, _ = studio
    _, img, _ = c.upload(png(NOISY))
    status, body, _ = c.job(task, img["id"], adapt=30)
    assert status == 400 and "unknown option \"adapt\"" in body["error"], body


def test_a_cancel_while_adapting_cancels_the_job(studio, tiny_weights):
    studio, c, steps = studio
    steps[0] = 10**9  # never finishes on its own
    _, img, _ = c.upload(png(NOISY))
    _, job, _ = c.job("denoise", img["id"], adapt=600)
    while job["progress"]["stage"] != "adapt" or job["progress"]["done"] < 1:
        assert job["status"] in ("queued", "running"), job
        _, job, _ = c.request("GET", f"/api/jobs/{job['id']}")
    assert job["progress"]["total"] == 10**9
    c.request("POST", f"/api/jobs/{job['id']}/cancel")
    job = c.wait(job["id"], timeout=60)
    assert job["status"] == "cancelled" and job["result"] is None and job["note"] is None
    assert studio._models[(str(tiny_weights), 2)].progress is None
    steps[0] = 2  # the worker goes on with the next job
    _, nxt, _ = c.job("denoise", img["id"], adapt=5)
    assert c.wait(nxt["id"])["status"] == "done"


def test_an_inpaint_job_adapts_on_its_image_and_mask_cut_alike(studio, tiny_inpaint_weights, monkeypatch):
    """The samples adapt() gets: a crop of the job's image (at most 512 px a side) and its mask
    cut at the same place (the inpaint objective itself is tests/test_adapt_inpaint.py's)."""
    import vitrestore.engine.adapt as engine_adapt

    studio, c, _ = studio
    studio.planner.shipped = lambda name: tiny_inpaint_weights if name == "inpaint" else JobPlanner.shipped(name)
    got = []

    def fake_adapt(model, samples, settings, quiet=False, progress=None):
        got.append(samples)
        progress(1, 1)
        return model, engine_adapt.AdaptResult("test", len(samples), 0.0, reason="a test's reason")

    monkeypatch.setattr(engine_adapt, "adapt", fake_adapt)
    wide = smooth_image(np.random.default_rng(11), 40, 700)
    hole = np.zeros((40, 700), np.uint8)
    hole[10:30, ::50] = 255
    hole[10:30, 1::50] = 255
    _, img, _ = c.upload(png(wide), "wide.png")
    _, m, _ = c.upload(png(hole), "mask.png")
    _, job, _ = c.job("inpaint", img["id"], mask=m["id"], texture=False, adapt=20)
    job = c.wait(job["id"])
    assert job["status"] == "done" and job["adapted"] is False, job
    assert job["note"] == "not adapted: a test's reason"
    [sample] = got[0]
    assert sample.image.shape == (1, 3, 40, 512) and sample.request["mask"].shape == (1, 1, 40, 512)
    assert "check_cancel" not in sample.request and sample.request["texture"] is False
    full = torch.from_numpy(wide).permute(2, 0, 1)[None].float() / 255
    j = next(j for j in range(700 - 512 + 1) if torch.allclose(full[..., j:j + 512], sample.image))
    assert np.array_equal(sample.request["mask"][0, 0].numpy() > 0.5, hole[:, j:j + 512] > 0)


# --- the page: the checkbox sends the option, the note shows (one small browser check) --------
@pytest.mark.slow  # a browser
def test_the_page_sends_adapt_and_shows_the_note(studio, tmp_path):
    from test_studio_browser import MISSING, chrome  # in CI a missing browser is an error there

    if MISSING:
        pytest.skip(f"no {', '.join(MISSING)}: apt-get install chromium chromium-driver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    studio, c, _ = studio
    driver = chrome()
    try:
        driver.get(c.base + "/")
        Image.fromarray(NOISY).save(tmp_path / "noisy.png")
        field = driver.find_element(By.ID, "file")
        driver.execute_script("arguments[0].hidden = false", field)
        field.send_keys(str(tmp_path / "noisy.png"))
        body = driver.find_element(By.TAG_NAME, "body")
        WebDriverWait(driver, 60).until(lambda d: body.get_attribute("data-state") == "ready")
        seconds = driver.find_element(By.ID, "adapt-seconds")
        assert not seconds.is_enabled() and seconds.get_attribute("value") == "30"
        for task in ("upscale", "inpaint", "stylize", "denoise"):  # shown for the three tasks that adapt
            Select(driver.find_element(By.ID, "task")).select_by_value(task)
            assert driver.find_element(By.ID, "adapt").is_displayed() == (task != "stylize"), task
        driver.find_element(By.ID, "adapt").click()
        assert seconds.is_enabled()
        driver.find_element(By.ID, "run").click()
        WebDriverWait(driver, 120).until(lambda d: body.get_attribute("data-state") in ("done", "error"))
        text = driver.find_element(By.ID, "message").text
        assert body.get_attribute("data-state") == "done" and "adapted: " in text, text
        [job] = studio.jobs.jobs.values()
        assert job.options["adapt"] == 30 and job.note in text
        refused = [e["message"] for e in driver.get_log("browser")
                   if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
        assert not refused, refused
    finally:
        driver.quit()
