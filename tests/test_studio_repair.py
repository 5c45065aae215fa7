"""The studio's Repair task: POST /api/draft runs the shipped damage detector on the whole photo
and answers its mask (the CLI's --mask-out, byte for byte), the page shows it in the painter to
edit, and the job fills the mask as edited with the inpaint model (a tiny one here), named
<stem>_repaired. The photo and its scratch are generated."""
from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import smooth_image
from test_studio_api import png
from test_studio_preview import tiny_studio

PHOTO = smooth_image(np.random.default_rng(31), 160, 200)
SCRATCH = np.zeros((160, 200), np.uint8)
cv2.line(SCRATCH, (10, 30), (190, 120), 255, 2)
for _x, _y in ((40, 120), (150, 40), (100, 140)):
    cv2.circle(SCRATCH, (_x, _y), 2, 255, -1)
DAMAGED = PHOTO.copy()
DAMAGED[SCRATCH > 0] = (245, 240, 230)


@pytest.fixture(scope="module")
def served(tiny_weights, tiny_inpaint_weights):
    server, client = tiny_studio(tiny_weights, tiny_inpaint_weights=tiny_inpaint_weights)
    _, img, _ = client.upload(png(DAMAGED), "old.png")
    yield server, client, img["id"]
    server.close()


def ask_draft(c, image, options=None, upload="mask", task="repair", **extra):
    body = {"task": task, "image": image, "options": options or {}, "upload": upload, **extra}
    return c.request("POST", "/api/draft", json.dumps(body).encode(), {"Content-Type": "application/json"})


def grey(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "L"
    return np.asarray(image)


def test_the_schema_offers_repair_with_its_draft(served):
    _, c, _ = served
    _, schema, _ = c.request("GET", "/api/tasks")
    repair = schema["tasks"]["repair"]
    assert repair["drafts"] == [{"upload": "mask", "label": "Find damage"}]
    assert [o["name"] for o in repair["options"]] == ["sensitivity", "mask"]
    assert all(t["drafts"] == [] for name, t in schema["tasks"].items() if name != "repair")
    assert list(schema["tasks"]).index("repair") == list(schema["tasks"]).index("inpaint") + 1


def test_a_draft_takes_the_upload_as_null_as_left_out(served):
    _, c, image = served
    status, data, _ = ask_draft(c, image, {"mask": None, "sensitivity": 0.5})
    assert status == 200 and grey(data).shape == (160, 200), data


def test_a_draft_is_the_commands_mask_out(served, tmp_path):
    from vitrestore.cli import main

    _, c, image = served
    for sensitivity in (None, 0.8):
        status, data, headers = ask_draft(c, image, {} if sensitivity is None else {"sensitivity": sensitivity})
        assert status == 200 and headers["Content-Type"] == "image/png", data
        drafted = grey(data)
        Image.fromarray(DAMAGED).save(tmp_path / "old.png")
        args = ["repair", str(tmp_path / "old.png"), "--mask-out", str(tmp_path), "--fill", "inpaint", "-q",
                "--overwrite"] + ([] if sensitivity is None else ["--sensitivity", str(sensitivity)])
        # the CLI's mask only: its fill is the shipped model's, not compared here
        done = CliRunner().invoke(main, args)
        assert done.exit_code == 0, done.output
        assert np.array_equal(drafted, np.asarray(Image.open(tmp_path / "old_mask.png")))
        grown = cv2.dilate(drafted, np.ones((3, 3), np.uint8)) > 0
        assert grown[SCRATCH > 0].mean() > 0.9  # the scratch is found


@pytest.mark.parametrize("change, words", [
    ({"upload": "strokes"}, "upload must be one of mask"),
    ({"options": {"mask": "x"}}, "a draft of 'mask' is made without one"),
    ({"options": {"sensitivity": 2}}, "option 'sensitivity' must be a number from 0 to 1"),
    ({"task": "denoise"}, "upload must be one of (none"),
    ({"crop": {}}, 'unknown key "crop" in the draft'),
])
def test_a_bad_draft_is_a_one_line_400(served, change, words):
    _, c, image = served
    body = {"task": "repair", "image": image, "options": {}, "upload": "mask", **change}
    status, data, _ = c.request("POST", "/api/draft", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status == 400 and words in data["error"] and "\n" not in data["error"], data


def test_the_job_fills_the_mask_as_edited_and_is_named_repaired(served):
    _, c, image = served
    edited = SCRATCH.copy()
    edited[:, :100] = 0  # the user erased the left half of what was found
    _, mask, _ = c.upload(png(edited), "mask.png")
    status, job, _ = c.job("repair", image, mask=mask["id"], sensitivity=0.3)
    assert status == 202, job
    job = c.wait(job["id"])
    assert job["status"] == "done", job
    _, result, _ = c.request("GET", f"/api/images/{job['result']}")
    assert result["name"] == "old_repaired.png"
    _, data, _ = c.request("GET", f"/api/images/{job['result']}/file")
    out = np.asarray(Image.open(io.BytesIO(data)))
    keep = edited == 0
    assert np.array_equal(out[keep], DAMAGED[keep])  # the erased half and the rest untouched
    assert np.abs(out[~keep].astype(int) - DAMAGED[~keep].astype(int)).max() > 10  # the rest of the scratch filled


@pytest.mark.slow
def test_browser_the_found_damage_is_drafted_edited_and_filled(tmp_path, tiny_weights, tiny_inpaint_weights):
    """Choosing Repair drafts the detector's mask into the painter (the same pixels as
    POST /api/draft); the user erases part of it with the mouse; Run fills exactly what is left
    and the download is old_repaired.png, identical outside it."""
    import test_studio_browser as tb

    if tb.MISSING:
        pytest.skip(f"no {', '.join(tb.MISSING)}")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server, client = tiny_studio(tiny_weights, tiny_inpaint_weights=tiny_inpaint_weights)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = tb.chrome(downloads)
    try:
        driver.get(server.url)
        Select(driver.find_element(By.ID, "task")).select_by_value("repair")
        Image.fromarray(DAMAGED).save(tmp_path / "old.png")
        tb.open_photo(driver, tmp_path / "old.png")
        body = driver.find_element(By.TAG_NAME, "body")
        WebDriverWait(driver, 60).until(lambda d: body.get_attribute("data-draft") in ("done", "error"))
        assert body.get_attribute("data-draft") == "done", driver.find_element(By.ID, "message").text
        assert driver.find_element(By.ID, "draft").is_displayed()
        read_mask = ("const c = document.getElementById('mask'); const d = c.getContext('2d').getImageData(0, 0, "
                     "c.width, c.height).data; const a = []; for (let i = 3; i < d.length; i += 4) a.push(d[i]); return a;")
        shown = np.array(driver.execute_script(read_mask), np.uint8).reshape(160, 200) > 0
        _, image, _ = client.upload(png(DAMAGED), "old.png")
        _, data, _ = ask_draft(client, image["id"])
        assert np.array_equal(shown, grey(data) > 0)  # the painter holds the detector's mask
        driver.find_element(By.ID, "eraser").click()
        canvas = driver.find_element(By.ID, "mask")
        zoom = canvas.rect["width"] / 200
        act = ActionChains(driver)  # erase along the scratch's right end from (140, 95), in screen pixels from the centre
        act.move_to_element_with_offset(canvas, int(40 * zoom), int(15 * zoom)).click_and_hold()
        for _ in range(6):
            act.move_by_offset(int(8 * zoom), int(4 * zoom))
        act.release().perform()
        edited = np.array(driver.execute_script(read_mask), np.uint8).reshape(160, 200) > 0
        assert 0 < edited.sum() < shown.sum() and not (edited & ~shown).any()  # only erased
        tb.shot(driver, "repair")  # the found damage in the painter, part of it erased
        driver.find_element(By.ID, "run").click()
        assert tb.wait_state(driver, "done", "error") == "done", driver.find_element(By.ID, "message").text
        out = tb.download(driver, downloads, "old_repaired.png")
        assert np.array_equal(out[~edited], DAMAGED[~edited])  # the erased false hits and the rest untouched
        assert np.abs(out[edited].astype(int) - DAMAGED[edited].astype(int)).max() > 10
    finally:
        driver.quit()
        server.close()
