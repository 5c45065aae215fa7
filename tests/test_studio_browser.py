"""The studio in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven
by selenium) opens a generated photo, paints a stroke with the mouse, runs inpaint, downloads
the result through the page's button; then denoise and upscale through the page.

Skipped only outside CI when the browser is missing (CI installs it: .ci/run). With
VITRESTORE_SCREENSHOTS=DIR the test saves the README's screenshots there."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
import vitrestore.tasks
from vitrestore.studio.http import StudioServer
from vitrestore.studio.server import Studio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None

MISSING = [what for what, ok in (("chromium", CHROMIUM), ("chromium-driver", DRIVER), ("selenium", webdriver)) if not ok]
if MISSING and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the browser test, but {', '.join(MISSING)} is missing (see .ci/run)")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"no {', '.join(MISSING)}: apt-get install chromium chromium-driver")

SHOTS = os.environ.get("VITRESTORE_SCREENSHOTS")


def chrome(downloads: Path | None = None):
    """Headless Chromium driven by selenium, its console kept (CSP refusals show there); files
    the page downloads land in `downloads` when given."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if downloads is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                               "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    if downloads is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


@pytest.fixture(scope="module")
def page(tmp_path_factory, tiny_weights):
    downloads = tmp_path_factory.mktemp("downloads")
    models = tmp_path_factory.mktemp("models")
    shutil.copy(tiny_weights, models / "my-denoiser.safetensors")
    studio = Studio(vitrestore.tasks, device="cpu", models_dir=models)
    server = StudioServer(studio, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = chrome(downloads)
    driver.get(server.url)
    yield driver, downloads
    driver.quit()
    server.close()


def wait_state(driver, *states, timeout=120):
    WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                                         in states)
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def open_photo(driver, path: Path):
    field = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].hidden = false", field)
    field.send_keys(str(path))
    driver.execute_script("arguments[0].hidden = true", field)
    wait_state(driver, "ready")


def download(driver, folder: Path, name: str) -> np.ndarray:
    target = folder / name
    if target.exists():
        target.unlink()
    driver.find_element(By.ID, "download").click()
    end = time.time() + 30
    while time.time() < end and not target.exists():
        time.sleep(0.05)
    time.sleep(0.2)  # Chrome renames the finished file into place
    return np.asarray(Image.open(target))


def shot(driver, name: str):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"studio_{name}.png"))


@pytest.mark.slow
def test_paint_a_stroke_inpaint_and_download(page, tmp_path):
    driver, downloads = page
    photo = smooth_image(np.random.default_rng(7), 240, 320)
    Image.fromarray(photo).save(tmp_path / "garden.png")
    open_photo(driver, tmp_path / "garden.png")
    Select(driver.find_element(By.ID, "task")).select_by_value("inpaint")
    canvas = driver.find_element(By.ID, "mask")
    zoom = canvas.rect["width"] / 320
    act = ActionChains(driver)  # a stroke across the middle, in screen pixels from the canvas centre
    act.move_to_element_with_offset(canvas, int(-80 * zoom), int(-10 * zoom)).click_and_hold()
    for step in range(1, 9):
        act.move_by_offset(int(20 * zoom), int(2 * zoom))
    act.release().perform()
    alpha = np.array(driver.execute_script(
        "const c = document.getElementById('mask'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "const a = []; for (let i = 3; i < d.length; i += 4) a.push(d[i]); return a;"), np.uint8).reshape(240, 320)
    stroke = alpha > 0
    assert 500 < stroke.sum() < 20000, stroke.sum()
    shot(driver, "inpaint")
    driver.find_element(By.ID, "run").click()
    assert wait_state(driver, "done", "error") == "done", driver.find_element(By.ID, "message").text
    out = download(driver, downloads, "garden_inpainted.png")
    assert out.shape == photo.shape
    assert np.array_equal(out[~stroke], photo[~stroke])  # identical outside the stroke
    assert np.abs(out[stroke].astype(int) - photo[stroke].astype(int)).max() > 10  # changed inside
    # undo brings the photo back; redo the result
    driver.find_element(By.ID, "undo").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "download").text.endswith("garden.png"))
    driver.find_element(By.ID, "redo").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "download").text.endswith("_inpainted.png"))


@pytest.mark.slow
@pytest.mark.parametrize("task, choose, name, factor", [
    ("denoise", None, "noisy_denoised.png", 1),
    ("upscale", "2", "noisy_x2.png", 2),
    ("stylize", "starry-night", "noisy_starry-night.png", 1),
    ("restore", "my-denoiser.safetensors", "noisy_denoised.png", 1),
])
def test_every_task_runs_through_the_page(page, tmp_path, task, choose, name, factor):
    driver, downloads = page
    clean = smooth_image(np.random.default_rng(8), 96, 128).astype(np.float32)
    noisy = np.clip(clean + np.random.default_rng(9).normal(0, 20, clean.shape), 0, 255).round().astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    open_photo(driver, tmp_path / "noisy.png")
    Select(driver.find_element(By.ID, "task")).select_by_value(task)
    if task == "upscale":
        Select(driver.find_element(By.ID, "scale")).select_by_value(choose)
    elif task == "restore":
        Select(driver.find_element(By.ID, "model")).select_by_value(choose)
    elif task == "stylize":
        button = driver.find_element(By.CSS_SELECTOR, f'.style[data-style="{choose}"]')
        button.click()
        WebDriverWait(driver, 60).until(lambda d: button.find_element(By.TAG_NAME, "img").get_attribute("src"))
    driver.find_element(By.ID, "run").click()
    assert wait_state(driver, "done", "error") == "done", driver.find_element(By.ID, "message").text
    shot(driver, task)
    out = download(driver, downloads, name)
    assert out.shape == (96 * factor, 128 * factor, 3)
    if task == "stylize":
        assert np.abs(out.astype(int) - noisy.astype(int)).mean() > 10
    if task == "denoise":
        err = lambda a: float(np.abs(a.astype(np.float32) - clean).mean())  # noqa: E731
        assert err(out) < 0.7 * err(noisy)


@pytest.mark.slow
def test_errors_show_as_a_message_not_a_trace(page, tmp_path):
    driver, _ = page
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    field = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].hidden = false", field)
    field.send_keys(str(tmp_path / "bad.png"))
    WebDriverWait(driver, 20).until(lambda d: "bad.png" in d.find_element(By.ID, "message").text)
    text = driver.find_element(By.ID, "message").text
    assert "Traceback" not in text and len(text.splitlines()) == 1


@pytest.mark.slow
def test_the_page_runs_under_its_own_security_policy(page):
    """The CSP (script, style and images from the studio only, blob: thumbnails, no framing)
    refuses nothing the page itself does, and the page's requests pass the Origin check."""
    driver, _ = page
    driver.refresh()
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "const imgs = [...document.querySelectorAll('.style img')];"
        "return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);"))
    assert driver.execute_script("return getComputedStyle(document.getElementById('message')).display") != ""
    # a 403 answer is logged as "... status of 403 (Forbidden)"; a bare "403" also matches a URL's
    # random port or id (a flake seen once)
    refused = [e["message"] for e in driver.get_log("browser")
               if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
               or "status of 403" in e["message"]]
    assert not refused, refused
