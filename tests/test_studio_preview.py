"""The studio's preview (POST /api/preview): a job's options run at once on a crop of its image,
answered as an 8-bit RGB PNG; and the page's denoise level slider, which previews before | after.
Tiny test models stand in for the shipped ones (denoise, upscale x2, inpaint) and every image is
generated; one API check of stylize uses the shipped style model (slow)."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_image
from test_studio_api import png, start
from vitrestore.studio.options import JobPlanner
from vitrestore.studio.server import PREVIEW_CONTEXT
import vitrestore.tasks

torch.set_num_threads(1)

CLEAN = smooth_image(np.random.default_rng(21), 160, 200)
NOISY = np.clip(CLEAN + np.random.default_rng(22).normal(0, 20, CLEAN.shape), 0, 255).round().astype(np.uint8)


def tiny_studio(tiny_weights, tiny_upscale_weights=None, tiny_inpaint_weights=None):
    """A served studio whose shipped denoise (and upscale x2, inpaint) models are the tiny test weights."""
    server, client = start()
    tiny = {"denoise": tiny_weights, "upscale-x2": tiny_upscale_weights, "inpaint": tiny_inpaint_weights}
    server.studio.planner.shipped = lambda name: tiny.get(name) or JobPlanner.shipped(name)
    return server, client


@pytest.fixture(scope="module")
def served(tiny_weights, tiny_upscale_weights, tiny_inpaint_weights):
    server, client = tiny_studio(tiny_weights, tiny_upscale_weights, tiny_inpaint_weights)
    _, img, _ = client.upload(png(NOISY), "noisy.png")
    yield server, client, img["id"]
    server.close()


def ask(c, task, image, options=None, crop=None, **extra):
    body = {"task": task, "image": image, "options": options or {}, **extra}
    if crop is not None:
        body["crop"] = crop
    return c.request("POST", "/api/preview", json.dumps(body).encode(), {"Content-Type": "application/json"})


def pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB"
    return np.asarray(image)


def direct(weights, image, ensemble=1, **request):
    """The model run on `image` without the studio, as the CLI and a job load it."""
    return vitrestore.tasks.load_model(weights, device="cpu", ensemble=ensemble)(image, **request)


def test_a_denoise_preview_is_its_crop_processed_with_the_jobs_model_and_request(served, tiny_weights):
    _, c, image = served
    assert PREVIEW_CONTEXT == 32  # the numbers below: a 64 px crop at (68, 48), seen with 32 px around it
    status, data, headers = ask(c, "denoise", image, {"sigma": 15}, {"x": 100, "y": 80, "size": 64})
    assert status == 200, data
    assert headers["Content-Type"] == "image/png" and headers["X-Crop"] == "68,48,64,64"
    got = pixels(data)
    assert got.shape == (64, 64, 3)
    # the job's plan: the denoise file with ensemble 2 and the request {sigma: 15}
    want = direct(tiny_weights, NOISY[16:144, 36:164], ensemble=2, sigma=15)[32:96, 32:96]
    assert np.array_equal(got, want)
    # blind (no sigma): the same crop without the level, which the model's output shows
    _, blind, _ = ask(c, "denoise", image, {}, {"x": 100, "y": 80, "size": 64})
    want_blind = direct(tiny_weights, NOISY[16:144, 36:164], ensemble=2)[32:96, 32:96]
    assert np.array_equal(pixels(blind), want_blind) and not np.array_equal(want_blind, want)


def test_a_crop_near_the_border_is_shifted_inside_and_a_small_image_is_whole(served, tiny_weights):
    _, c, image = served
    status, data, headers = ask(c, "denoise", image, {"sigma": 30}, {"x": 3, "y": 159, "size": 64})
    assert status == 200 and headers["X-Crop"] == "0,96,64,64"
    want = direct(tiny_weights, NOISY[64:160, 0:96], ensemble=2, sigma=30)[32:96, 0:64]  # no context beyond the edge
    assert np.array_equal(pixels(data), want)
    # no crop given: the default 256 px side at the image's centre, here the whole 200x160 image
    status, data, headers = ask(c, "denoise", image, {"sigma": 30})
    assert status == 200 and headers["X-Crop"] == "0,0,200,160"
    assert np.array_equal(pixels(data), direct(tiny_weights, NOISY, ensemble=2, sigma=30))


def test_an_upscale_preview_is_the_crops_output_at_its_scale(served, tiny_upscale_weights):
    _, c, image = served
    status, data, headers = ask(c, "upscale", image, {"scale": 2}, {"x": 50, "y": 40, "size": 48})
    assert status == 200 and headers["X-Crop"] == "26,16,48,48"
    got = pixels(data)
    assert got.shape == (96, 96, 3)
    want = direct(tiny_upscale_weights, NOISY[0:96, 0:106])[32:128, 52:148]  # context (0, 0)-(106, 96), x2
    assert np.array_equal(got, want)


def test_an_inpaint_preview_cuts_the_mask_as_the_crop(served, tiny_inpaint_weights):
    server, c, image = served
    hole = np.zeros((160, 200), np.uint8)
    hole[70:90, 90:130] = 255
    _, m, _ = c.upload(png(hole), "mask.png")
    options = {"mask": m["id"], "texture": False}
    status, data, headers = ask(c, "inpaint", image, options, {"x": 110, "y": 80, "size": 64})
    assert status == 200 and headers["X-Crop"] == "78,48,64,64", data
    cut = (slice(16, 144), slice(46, 174))
    want = direct(tiny_inpaint_weights, NOISY[cut], mask=hole[cut] > 0, texture=False)[32:96, 32:96]
    got = pixels(data)
    assert np.array_equal(got, want)
    keep = hole[48:112, 78:142] == 0
    assert np.array_equal(got[keep], NOISY[48:112, 78:142][keep])  # known pixels stay
    # a crop whose surroundings hold no masked pixel: nothing to show, said in one line
    status, body, _ = ask(c, "inpaint", image, {"mask": m["id"]}, {"x": 20, "y": 20, "size": 32})
    assert status == 400 and body["error"].startswith("inpaint: no masked pixel in or near the crop"), body


def test_16_bit_gray_previews_as_8_bit_rgb(served, tiny_weights):
    _, c, _ = served
    gray = (smooth_image(np.random.default_rng(23), 40, 50)[:, :, 0].astype(np.uint16) * 250 + 100)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "PNG")
    status, img, _ = c.upload(buf.getvalue(), "gray16.png")
    assert status == 201 and img["bits"] == 16 and img["channels"] == 1, img
    status, data, headers = ask(c, "denoise", img["id"], {"sigma": 10}, {"x": 0, "y": 0, "size": 256})
    assert status == 200 and headers["X-Crop"] == "0,0,50,40"
    out = direct(tiny_weights, gray[:, :, None], ensemble=2, sigma=10)  # (40, 50, 1) uint16, as the job runs it
    want = np.repeat(np.round(out.astype(np.float32) / 257).astype(np.uint8), 3, axis=2)
    assert np.array_equal(pixels(data), want)


def test_a_preview_ignores_adapt_and_never_adapts(served, tiny_weights):
    server, c, image = served
    crop = {"x": 60, "y": 60, "size": 32}
    plain = ask(c, "denoise", image, {"sigma": 20}, crop)[1]
    server.studio.adapt_settings = lambda seconds: pytest.fail("a preview adapted")  # never asked
    try:
        status, adapted, _ = ask(c, "denoise", image, {"sigma": 20, "adapt": 30}, crop)
    finally:
        del server.studio.adapt_settings
    assert status == 200 and adapted == plain
    # but the option is checked as a job's: a bad value is the same 400
    status, body, _ = ask(c, "denoise", image, {"adapt": "30"}, crop)
    assert status == 400 and "option 'adapt' must be a number of seconds" in body["error"], body


@pytest.mark.parametrize("crop, words", [
    ({"x": 10, "y": 10, "size": 31}, "crop: 'size' must be a whole number from 32 to 512, got 31"),
    ({"x": 10, "y": 10, "size": 513}, "crop: 'size' must be a whole number from 32 to 512, got 513"),
    ({"size": "64"}, "crop: 'size' must be a whole number"),
    ({"size": 64.0}, "crop: 'size' must be a whole number"),
    ({"x": True}, "crop: 'x' must be a whole number from 0 to 199, got true"),
    ({"x": -1}, "crop: 'x' must be a whole number from 0 to 199, got -1"),
    ({"x": 200}, "crop: 'x' must be a whole number from 0 to 199, got 200"),
    ({"y": 160}, "crop: 'y' must be a whole number from 0 to 159, got 160"),
    ({"x": 10.5}, "crop: 'x' must be a whole number"),
    ({"x": 10, "w": 64}, "crop: unknown key \"w\" (it takes x, y, size)"),
    ([100, 80], "crop must be a JSON object"),
], ids=["size-small", "size-big", "size-string", "size-float", "x-bool", "x-negative", "x-beyond", "y-beyond",
        "x-fraction", "unknown-key", "list"])
def test_a_bad_crop_is_a_one_line_400_naming_it(served, crop, words):
    _, c, image = served
    status, body, _ = ask(c, "denoise", image, {}, crop)
    assert status == 400 and body["error"].startswith(words) and len(body["error"].splitlines()) == 1, body


@pytest.mark.parametrize("task, options, extra, words", [
    ("denoise", {"sigma": 900}, {}, "denoise: option 'sigma' must be a number from 0 to 255, got 900"),
    ("denoise", {"sigmaa": 15}, {}, "denoise: unknown option \"sigmaa\""),
    ("upscale", {"scale": 3}, {}, "upscale: option 'scale' must be one of 2, 4"),
    ("stylize", {"style": "monet"}, {}, "stylize: unknown style \"monet\""),
    ("sharpen", {}, {}, "task must be one of"),
    ("denoise", {}, {"tile": 64}, "unknown key \"tile\" in the preview (it takes task, image, options, crop, frame)"),
], ids=["sigma-range", "unknown-option", "scale", "style", "task", "unknown-key"])
def test_bad_options_are_the_jobs_400s(served, task, options, extra, words):
    server, c, image = served
    status, body, _ = ask(c, task, image, options, {"x": 10, "y": 10}, **extra)
    assert status == 400 and body["error"].startswith(words), body
    assert not server.studio.jobs.jobs  # a preview is no job


def test_an_unknown_image_is_404(served):
    _, c, _ = served
    status, body, _ = ask(c, "denoise", "0123456789abcdef", {"sigma": 15}, {"x": 1, "y": 1})
    assert status == 404 and body["error"].startswith("no image \"0123456789abcdef\""), body
    status, body, _ = ask(c, "denoise", 42, {})
    assert status == 400 and "image must be the id of an uploaded image" in body["error"], body


def test_previews_run_one_at_a_time(served, tiny_weights):
    server, c, image = served
    model = server.studio.model(tiny_weights, 2)
    real, running, most = model.run_arrays, [0], [0]

    def counted(*args, **kw):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.05)
        try:
            return real(*args, **kw)
        finally:
            running[0] -= 1

    model.run_arrays = counted
    answers = []
    try:
        threads = [threading.Thread(target=lambda s=s: answers.append(ask(c, "denoise", image, {"sigma": s},
                                                                          {"x": 50, "y": 50, "size": 32})[0]))
                   for s in (5, 10, 15, 20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        del model.run_arrays
    assert answers == [200] * 4 and most[0] == 1


@pytest.mark.parametrize("options", [[], 0, False, ""], ids=["list", "zero", "false", "empty-string"])
def test_options_that_are_no_object_are_a_400_even_when_falsy(served, options):
    _, c, image = served  # they were taken for {} (a blind denoise), a job's too
    for path in ("/api/preview", "/api/jobs"):
        status, body, _ = c.request("POST", path, json.dumps({"task": "denoise", "image": image,
                                                              "options": options}).encode(),
                                    {"Content-Type": "application/json"})
        assert status == 400 and body["error"].startswith("options must be a JSON object"), (path, body)


def small_server(tiny_weights, **kw):
    """A tiny-model studio served with a few connection slots (`kw`: the server's)."""
    from studio_client import Client
    from vitrestore.studio.http import StudioServer
    from vitrestore.studio.server import Studio

    studio = Studio(vitrestore.tasks, device="cpu")
    studio.planner.shipped = lambda name: tiny_weights if name == "denoise" else JobPlanner.shipped(name)
    server = StudioServer(studio, "127.0.0.1", 0, None, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = Client(f"http://127.0.0.1:{server.server_address[1]}")
    _, img, _ = client.upload(png(NOISY), "noisy.png")
    return server, client, img["id"]


def test_previews_waiting_behind_a_job_leave_connections_for_the_rest_of_the_api(tiny_weights):
    from vitrestore.studio.server import PREVIEW_WAITING

    server, c, image = small_server(tiny_weights, max_connections=8)
    studio, crop = server.studio, {"x": 50, "y": 50, "size": 32}
    answers = []
    try:
        studio.device_lock.acquire()  # a long job holds the device: previews wait
        threads = [threading.Thread(target=lambda: answers.append(ask(c, "denoise", image, {"sigma": 5}, crop)),
                                    daemon=True) for _ in range(PREVIEW_WAITING)]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while studio._preview_slots._value > 0 and time.time() < deadline:  # all of them waiting
            time.sleep(0.05)
        # the ones beyond PREVIEW_WAITING are refused at once (they took every connection slot: the
        # page's job polling and everything else was answered 503 until the job had finished); asked
        # one after another, so that the server's own connection limit never answers them instead
        for _ in range(10 - PREVIEW_WAITING):
            answers.append(ask(c, "denoise", image, {"sigma": 5}, crop))
        refused = [a for a in answers if a[0] == 429]
        assert len(refused) == 10 - PREVIEW_WAITING, [a[0] for a in answers]
        assert all(a[1]["error"].startswith("previews are busy") for a in refused), refused[0]
        assert c.request("GET", "/api/info")[0] == 200
        studio.device_lock.release()
        for t in threads:
            t.join(60)
        assert sorted(a[0] for a in answers) == [200] * PREVIEW_WAITING + [429] * (10 - PREVIEW_WAITING)
        assert ask(c, "denoise", image, {"sigma": 5}, crop)[0] == 200  # and the count went back down
    finally:
        if studio.device_lock.locked() and len(answers) < 10:
            studio.device_lock.release()
        server.close()


def test_a_preview_while_the_studio_closes_is_a_503_not_a_wait_for_ever(tiny_weights):
    server, c, image = small_server(tiny_weights)
    studio, crop = server.studio, {"x": 50, "y": 50, "size": 32}
    assert ask(c, "denoise", image, {"sigma": 5}, crop)[0] == 200  # decoded, model loaded
    answers = []
    studio.device_lock.acquire()  # a model call under way (a job's)
    waiting = threading.Thread(target=lambda: answers.append(ask(c, "denoise", image, {"sigma": 5}, crop)), daemon=True)
    waiting.start()
    while not studio._preview_lock.locked():
        time.sleep(0.02)
    closing = threading.Thread(target=server.close, daemon=True)
    closing.start()  # close() waits for the device
    waiting.join(10)
    try:
        assert answers and answers[0][0] == 503 and answers[0][1]["error"] == "the studio is closing", answers
    finally:
        studio.device_lock.release()
        closing.join(60)
    assert not closing.is_alive() and studio._closed
    # asked after close (close() keeps the device lock): answered at once, not a thread blocked for ever
    done = []
    late = threading.Thread(target=lambda: done.append(pytest.raises(Exception, studio.preview,
                                                                     {"task": "denoise", "image": image})))
    late.start()
    late.join(10)
    assert not late.is_alive() and done and done[0].value.status == 503


@pytest.mark.slow  # the shipped style model
def test_a_stylize_preview_uses_the_style_and_strength(served):
    server, c, image = served
    status, data, headers = ask(c, "stylize", image, {"style": "starry-night", "strength": 0.5},
                                {"x": 100, "y": 80, "size": 48})
    assert status == 200 and headers["X-Crop"] == "76,56,48,48", data
    model = vitrestore.tasks.load_model(JobPlanner.shipped("style-starry-night"), device="cpu")
    want = model(NOISY[24:136, 44:156], strength=0.5)[32:80, 32:80]
    assert np.array_equal(pixels(data), want)


# --- the page: the level slider previews before | after, the job takes its value -------------------
@pytest.fixture
def page(tiny_weights):
    from test_studio_browser import MISSING, chrome

    if MISSING:
        pytest.skip(f"no {', '.join(MISSING)}: apt-get install chromium chromium-driver")
    server, client = tiny_studio(tiny_weights)
    studio = server.studio
    asked, gate = [], threading.Event()
    gate.set()
    real = studio.preview

    def watched(body):  # what the page asks for; `gate` holds an answer back while cleared
        asked.append(body)
        assert gate.wait(60)
        return real(body)

    studio.preview = watched
    driver = chrome()
    try:
        driver.get(server.url)
        yield driver, studio, asked, gate
    finally:
        gate.set()
        driver.quit()
        server.close()


@pytest.mark.slow  # a browser
def test_browser_the_level_slider_previews_a_crop_and_the_job_takes_its_value(page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from test_studio_browser import open_photo, shot, wait_state

    driver, studio, asked, gate = page
    clean = smooth_image(np.random.default_rng(24), 300, 400)
    noisy = np.clip(clean + np.random.default_rng(25).normal(0, 20, clean.shape), 0, 255).round().astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    open_photo(driver, tmp_path / "noisy.png")
    find = lambda i: driver.find_element(By.ID, i)  # noqa: E731
    panel, slider, auto = find("preview"), find("sigma"), find("sigma-auto")
    assert [slider.get_attribute(k) for k in ("type", "min", "max", "step")] == ["range", "0", "75", "1"]
    assert auto.is_selected() and not panel.is_displayed() and find("sigma-value").text == "auto"

    def shown(count):
        WebDriverWait(driver, 60).until(lambda d: panel.get_attribute("data-count") == str(count))
        assert panel.get_attribute("data-state") == "shown"
        return json.loads(panel.get_attribute("data-options"))

    # a click on the photo picks the crop's centre; Auto: no level is sent
    photo = find("photo")
    zoom = driver.execute_script("return arguments[0].getBoundingClientRect().width", photo) / 400  # as shown
    ActionChains(driver).move_to_element_with_offset(photo, int(60 * zoom), int(20 * zoom)).click().perform()
    assert shown(1) == {}
    crop = asked[-1]["crop"]  # the image's centre (200, 150) and the click's offset
    assert abs(crop["x"] - 260) <= 2 and abs(crop["y"] - 170) <= 2 and asked[-1]["options"] == {}, asked[-1]
    left, top = min(crop["x"] - 128, 400 - 256), min(crop["y"] - 128, 300 - 256)  # shifted inside: (132, 42)
    after = driver.execute_script("const i = document.getElementById('preview-after');"
                                  "return [i.naturalWidth, i.naturalHeight]")
    assert after == [256, 256]
    # "before" is the same crop of the source, cut on the page
    url = driver.execute_script("return document.getElementById('preview-before').toDataURL('image/png')")
    before = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    assert np.array_equal(before, noisy[top:top + 256, left:left + 256])
    box = find("crop-box")
    assert box.is_displayed() and box.value_of_css_property("left") == f"{left}px"

    # the slider: moving it unticks Auto; while an answer is held back the page shows it is busy,
    # sends nothing more, and drops that answer (stale) for the newest value
    gate.clear()
    slider.send_keys(Keys.RIGHT)  # 25 -> 26
    WebDriverWait(driver, 10).until(lambda d: len(asked) == 2)
    assert not auto.is_selected() and find("sigma-value").text == "26"
    assert panel.get_attribute("data-state") == "busy" and "previewing" in find("preview-state").text
    slider.send_keys(Keys.RIGHT, Keys.RIGHT)  # 28
    time.sleep(0.8)  # past the debounce: the page waits for the answer in flight
    assert len(asked) == 2
    gate.set()
    assert shown(2) == {"sigma": 28}
    shot(driver, "preview")  # VITRESTORE_SCREENSHOTS=docs: docs/studio_preview.png, the slider and before | after
    assert [a["options"] for a in asked] == [{}, {"sigma": 26}, {"sigma": 28}]
    assert all(a["crop"] == crop for a in asked)
    assert "level 28" in find("preview-state").text
    # back to the shown level while an answer is under way: that answer is dropped, nothing is asked again
    gate.clear()
    slider.send_keys(Keys.RIGHT)  # 29
    WebDriverWait(driver, 10).until(lambda d: len(asked) == 4)
    slider.send_keys(Keys.LEFT)  # 28 again
    time.sleep(0.5)
    gate.set()
    WebDriverWait(driver, 30).until(lambda d: panel.get_attribute("data-state") == "shown")
    assert find("preview-state").text == "level 28" and panel.get_attribute("data-count") == "2"
    time.sleep(0.5)
    assert [a["options"] for a in asked[3:]] == [{"sigma": 29}]

    # the job takes the slider's value; with Auto ticked again, none
    find("run").click()
    assert wait_state(driver, "done", "error") == "done", find("message").text
    assert not panel.is_displayed()  # it showed the image before the run
    auto.click()
    assert find("sigma-value").text == "auto"
    assert shown(3) == {}  # Auto toggled: a preview (of the result, now shown)
    body = driver.find_element(By.TAG_NAME, "body")
    first = body.get_attribute("data-result")
    find("run").click()
    WebDriverWait(driver, 120).until(lambda d: body.get_attribute("data-result") != first
                                     or body.get_attribute("data-state") == "error")
    assert wait_state(driver, "done", "error") == "done", find("message").text
    jobs = sorted(studio.jobs.jobs.values(), key=lambda j: j.created)
    assert [j.options for j in jobs] == [{"sigma": 28, "adapt": 0}, {"adapt": 0}]

    # stylize's strength slider previews the same way (the shipped style model, on the same place)
    from selenium.webdriver.support.ui import Select

    Select(find("task")).select_by_value("stylize")
    assert not panel.is_displayed()
    find("strength").send_keys(Keys.LEFT)  # 1 -> 0.95
    options = shown(4)
    assert options["style"] in studio.styles and options["strength"] == 0.95 and asked[-1]["task"] == "stylize"
    assert asked[-1]["crop"] == crop and "strength 0.95" in find("preview-state").text
    refused = [e["message"] for e in driver.get_log("browser")
               if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    assert not refused, refused


@pytest.mark.slow  # a browser
def test_browser_a_new_image_or_a_preview_error_never_shows_an_old_pair_and_an_error_can_be_retried(page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from test_studio_browser import open_photo, wait_state
    from vitrestore.studio.errors import ApiError

    driver, studio, asked, gate = page
    find = lambda i: driver.find_element(By.ID, i)  # noqa: E731
    photos = [np.clip(smooth_image(np.random.default_rng(30 + k), 300, 400).astype(int) + 40 * k, 0, 255)
              .astype(np.uint8) for k in range(2)]
    for k, a in enumerate(photos):
        Image.fromarray(a).save(tmp_path / f"photo{k}.png")
    panel, slider = find("preview"), find("sigma")

    def shown(count):
        WebDriverWait(driver, 60).until(lambda d: panel.get_attribute("data-count") == str(count))
        assert panel.get_attribute("data-state") == "shown"

    def pair():  # what the panel shows: the "after" image's source, whether "before" holds any pixel
        return driver.execute_script(
            "const b = document.getElementById('preview-before');"
            "const d = b.width && b.height ? b.getContext('2d').getImageData(0, 0, b.width, b.height).data : [];"
            "return [document.getElementById('preview-after').getAttribute('src'), d.some((v) => v > 0)]")

    open_photo(driver, tmp_path / "photo0.png")
    photo = find("photo")
    ActionChains(driver).move_to_element_with_offset(photo, 5, 5).click().perform()
    shown(1)
    assert pair()[0] and pair()[1]
    # another photo of the same size: while its first preview is under way, the panel shows
    # "previewing…" over nothing, not the first photo's pair
    open_photo(driver, tmp_path / "photo1.png")
    WebDriverWait(driver, 10).until(lambda d: not panel.is_displayed())
    gate.clear()
    slider.send_keys(Keys.RIGHT)  # 26
    WebDriverWait(driver, 10).until(lambda d: len(asked) == 2 and panel.is_displayed())
    assert panel.get_attribute("data-state") == "busy" and asked[-1]["image"] != asked[0]["image"]
    assert pair() == [None, False], "the first photo's pair shown for the second"
    gate.set()
    shown(2)

    # a preview that fails: one line on the page, no pair; the same preview asked again is sent again
    watched = studio.preview

    def failing(body):
        asked.append(body)
        raise ApiError(500, "internal error: out of memory")

    studio.preview = failing
    slider.send_keys(Keys.RIGHT)  # 27
    WebDriverWait(driver, 30).until(lambda d: panel.get_attribute("data-state") == "error")
    assert find("message").text == "internal error: out of memory" and pair() == [None, False]
    studio.preview = watched
    sent = len(asked)
    ActionChains(driver).move_to_element_with_offset(photo, 5, 5).click().perform()  # the same place again
    shown(3)
    assert len(asked) == sent + 1 and asked[-1]["options"] == {"sigma": 27}
    assert find("message").text == ""  # the failure's line went with it
    # and Run runs the slider's level
    find("run").click()
    assert wait_state(driver, "done", "error") == "done", find("message").text
    assert [j.options for j in studio.jobs.jobs.values()] == [{"sigma": 27, "adapt": 0}]
