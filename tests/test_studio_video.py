"""The studio's clips (issue 33, item 5), served in-process: a clip uploaded (sniffed by its
bytes) and its frames served one at a time; bad clips (no video stream, cut short, no frames,
frames over the limit) refused in one line with nothing kept; a job over the whole clip that
counts frames, keeps the sound and is downloaded under the CLI's name; a cancel that leaves
nothing; and the page in headless Chromium (upload, the frame slider, run, download). Tiny
clips (64x48, a few frames) made here with PyAV, the tiny trained model as the Restore task's."""
from __future__ import annotations

import io
import json
import shutil
import time

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from test_studio_api import served, start  # noqa: E402,F401  (served: the module's studio)
from test_video_io import make_clip, packets, pts  # noqa: E402
from vitrestore.io.video import frames  # noqa: E402


def kept(server) -> list[str]:
    """The private folder's files and folders besides its pid file."""
    return sorted(p.name for p in server.studio.folder.iterdir() if p.name != "studio.pid")


def test_a_clip_is_sniffed_and_its_frames_are_served(served, tmp_path):
    server, c = served
    src = make_clip(tmp_path / "walk.mp4", n=8, steps=(120, 50))
    status, clip, _ = c.upload(src.read_bytes(), "holiday walk.bin", {"Content-Type": "video/mp4"})
    assert status == 201, clip
    assert (clip["name"], clip["width"], clip["height"]) == ("holiday_walk.mp4", 64, 48)  # by its bytes
    assert clip["clip"]["frames"] == 8 and clip["clip"]["streams"] == ["audio aac"]
    times = [float(t) for t in pts(src)]
    for f in frames(src):  # every frame as decoded in order, each by its own seek
        status, data, headers = c.request("GET", f"{clip['clip']['frame']}{f.index}")
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), f.rgb), f.index
        assert abs(float(headers["X-Frame-Time"]) - (times[f.index] - times[0])) < 1e-6
    _, first, _ = c.request("GET", clip["preview"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(first))), next(frames(src)).rgb)
    for bad in ("8", "-1", "x", "99999999999"):
        status, body, _ = c.request("GET", f"{clip['clip']['frame']}{bad}")
        assert status == 404 and "frame" in body["error"], (bad, body)
    mkv = make_clip(tmp_path / "b.mkv", n=3, audio=False)
    status, other, _ = c.upload(mkv.read_bytes(), "b.mkv")
    assert status == 201 and other["name"] == "b.mkv" and other["clip"]["frames"] == 3


def zero_frames(path):
    """A clip with a video stream that holds no frame (only its sound)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=12)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        fr.sample_rate = 48000
        for p in list(a.encode(fr)) + list(a.encode(None)):
            c.mux(p)
    return path


def test_bad_clips_are_refused_in_one_line_and_nothing_is_kept(served, tmp_path):
    server, c = served
    before = kept(server)
    with av.open(str(tmp_path / "sound.mkv"), "w") as out:  # audio only
        a = out.add_stream("aac", rate=48000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        fr.sample_rate = 48000
        for p in list(a.encode(fr)) + list(a.encode(None)):
            out.mux(p)
    long_mkv = make_clip(tmp_path / "long.mkv", n=24).read_bytes()
    long_mp4 = make_clip(tmp_path / "long.mp4", n=24).read_bytes()
    cases = [("sound.mkv", (tmp_path / "sound.mkv").read_bytes(), "no video stream"),
             ("cut.mkv", long_mkv[: len(long_mkv) // 2], "cut short"),
             ("cut.mp4", long_mp4[: len(long_mp4) // 2], "not a readable video"),
             ("empty.mkv", zero_frames(tmp_path / "empty.mkv").read_bytes(), "no frames"),
             ("fake.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200, "not a readable video")]
    for name, data, words in cases:
        status, body, _ = c.upload(data, name)
        text = body["error"]
        assert status == 400 and words in text and text.startswith(name) and "\n" not in text, (name, text)
    assert kept(server) == before  # nothing of a refused upload stays


def test_frames_over_the_limit_are_refused(tmp_path):
    server, c = start(max_pixels=64 * 47)
    try:
        status, body, _ = c.upload(make_clip(tmp_path / "big.mp4", n=2, audio=False).read_bytes(), "big.mp4")
        assert status == 413 and body["error"].startswith("big.mp4: its frames are 64x48"), body
        assert kept(server) == []
    finally:
        server.close()


def test_a_clip_job_counts_frames_keeps_the_sound_and_downloads(served, tmp_path):
    server, c = served
    src = make_clip(tmp_path / "clip.mp4", n=20, steps=(120, 50))  # two pieces of 16 frames at most
    _, clip, _ = c.upload(src.read_bytes(), "clip.mp4")
    status, job, _ = c.job("restore", clip["id"], model="tiny.safetensors")
    assert status == 202, job
    seen = set()
    end = time.time() + 120
    while job["status"] not in ("done", "failed", "cancelled") and time.time() < end:
        _, job, _ = c.request("GET", f"/api/jobs/{job['id']}")
        if job["status"] == "running":
            seen.add((job["progress"]["stage"], job["progress"]["done"], job["progress"]["total"]))
        time.sleep(0.01)
    assert job["status"] == "done", job
    assert job["progress"] == {"done": 20, "total": 20, "passes": 1, "stage": "frames"}
    assert not [s for s in seen if s != ("run", 0, 0) and not (s[0] == "frames" and s[2] == 20 and 0 <= s[1] <= 20)], seen
    status, result, _ = c.request("GET", f"/api/images/{job['result']}")
    assert result["name"] == "clip_denoised.mp4" and result["clip"]["frames"] == 20
    status, data, headers = c.request("GET", result["file"])
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert 'filename="clip_denoised.mp4"' in headers["Content-Disposition"]
    out = tmp_path / "clip_denoised.mp4"
    out.write_bytes(data)
    assert len(list(frames(out))) == 20 and pts(out) == pts(src)  # every frame, each at its time
    assert packets(out, "audio") == packets(src, "audio")  # the sound copied untouched
    status, data, _ = c.request("GET", f"{result['clip']['frame']}19")  # the result's frames are served too
    assert status == 200 and np.asarray(Image.open(io.BytesIO(data))).shape == (48, 64, 3)
    assert not [p for p in kept(server) if p.startswith("job-")]  # the job's pieces are gone


def test_a_cancel_stops_at_the_next_frame_and_leaves_nothing(served, tmp_path):
    server, c = served
    studio = server.studio
    src = make_clip(tmp_path / "long.mp4", n=40, audio=False)
    _, clip, _ = c.upload(src.read_bytes(), "long.mp4")
    before = kept(server)
    studio.jobs.paused.set()
    try:
        _, public, _ = c.job("restore", clip["id"], model="tiny.safetensors")
        job = studio.jobs.jobs[public["id"]]
        counted = job.frames_progress
        seen = []

        def progress(done, total):  # cancelled once a piece (16 frames) is finished and the next begun
            seen.append(done)
            if done == 18:
                c.request("POST", f"/api/jobs/{job.id}/cancel")
            counted(done, total)

        job.frames_progress = progress
    finally:
        studio.jobs.paused.clear()
    done = c.wait(job.id)
    assert done["status"] == "cancelled" and done["result"] is None, done
    assert seen[-1] == 18  # no frame after the cancel
    assert kept(server) == before  # no piece, no partial clip, no result


def test_a_clip_is_not_adapted(served, tmp_path):
    _, c = served
    _, clip, _ = c.upload(make_clip(tmp_path / "a.mp4", n=2, audio=False).read_bytes(), "a.mp4")
    status, body, _ = c.job("denoise", clip["id"], adapt=30)
    assert status == 400 and "adapt" in body["error"], body


def test_a_preview_and_its_errors_on_a_clips_frame(served, tmp_path, tiny_weights):
    server, c = served
    src = make_clip(tmp_path / "p.mp4", n=6, audio=False)
    _, clip, _ = c.upload(src.read_bytes(), "p.mp4")
    from vitrestore.tasks import load_model

    model = load_model(str(tiny_weights), device="cpu")
    for n in (0, 4):
        body = {"task": "restore", "image": clip["id"], "options": {"model": "tiny.safetensors"}, "frame": n,
                "crop": {"x": 32, "y": 24, "size": 32}}
        status, data, headers = c.request("POST", "/api/preview", json.dumps(body).encode(),
                                          {"Content-Type": "application/json"})
        assert status == 200 and headers["X-Crop"] == "16,8,32,32", data
        rgb = list(frames(src))[n].rgb  # the model sees the whole 64x48 frame (the crop and its context)
        want = model.run_arrays([rgb])[0][8:40, 16:48]
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), want), n
    for frame, words in ((6, "from 0 to 5"), (1.0, "whole number"), (True, "whole number")):
        body = {"task": "restore", "image": clip["id"], "options": {"model": "tiny.safetensors"}, "frame": frame}
        status, err, _ = c.request("POST", "/api/preview", json.dumps(body).encode(), {"Content-Type": "application/json"})
        assert status == 400 and words in err["error"], err
    _, photo, _ = c.upload(png(np.zeros((8, 8, 3), np.uint8)), "still.png")
    body = {"task": "restore", "image": photo["id"], "options": {"model": "tiny.safetensors"}, "frame": 0}
    status, err, _ = c.request("POST", "/api/preview", json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status == 400 and "not a clip" in err["error"], err
    status, err, _ = c.request("GET", f"/api/images/{photo['id']}/frames/0")
    assert status == 404 and "not a clip" in err["error"], err


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_the_page_opens_a_clip_slides_runs_and_downloads(tmp_path, tiny_weights):
    """Headless Chromium (as test_studio_browser.py drives it): open a clip, step the slider to
    frame 3 (the frame drawn is the clip's), run Restore, hold Compare (the same frame before),
    download the clip under the CLI's name with every frame and its sound."""
    browser = pytest.importorskip("test_studio_browser")
    if browser.MISSING:
        pytest.skip(f"no {', '.join(browser.MISSING)}")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    models, downloads = tmp_path / "models", tmp_path / "downloads"
    models.mkdir()
    downloads.mkdir()
    shutil.copy(tiny_weights, models / "mine.safetensors")
    server, c = start(models_dir=models)
    driver = browser.chrome(downloads)
    try:
        driver.get(server.url)
        src = make_clip(tmp_path / "street.mp4", n=8)
        browser.open_photo(driver, src)
        body = driver.find_element(By.TAG_NAME, "body")
        assert body.get_attribute("data-clip") is not None
        assert "8 frames" in driver.find_element(By.ID, "message").text
        slider = driver.find_element(By.ID, "frame")
        slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        WebDriverWait(driver, 20).until(lambda d: body.get_attribute("data-frame") == "3")
        assert driver.find_element(By.ID, "frame-value").text.startswith("4 / 8")

        def canvas():  # the photo canvas's pixels, (H, W, 3)
            flat = driver.execute_script(
                "const c = document.getElementById('photo');"
                "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);")
            return np.array(flat, np.uint8).reshape(48, 64, 4)[..., :3]

        shown = list(frames(src))
        assert np.array_equal(canvas(), shown[3].rgb)
        Select(driver.find_element(By.ID, "task")).select_by_value("restore")
        Select(driver.find_element(By.ID, "model")).select_by_value("mine.safetensors")
        driver.find_element(By.ID, "run").click()
        assert browser.wait_state(driver, "done", "error") == "done", driver.find_element(By.ID, "message").text
        result = body.get_attribute("data-result")
        _, after, _ = c.request("GET", f"/api/images/{result}/frames/3")
        after = np.asarray(Image.open(io.BytesIO(after)))
        WebDriverWait(driver, 20).until(lambda d: np.array_equal(canvas(), after))  # after: the result's frame 3
        assert not np.array_equal(after, shown[3].rgb)
        compare = driver.find_element(By.ID, "compare")
        ActionChains(driver).click_and_hold(compare).perform()
        WebDriverWait(driver, 20).until(lambda d: np.array_equal(canvas(), shown[3].rgb))  # held: before
        ActionChains(driver).release(compare).perform()
        WebDriverWait(driver, 20).until(lambda d: np.array_equal(canvas(), after))
        driver.find_element(By.ID, "download").click()
        target = downloads / "street_denoised.mp4"
        end = time.time() + 30
        while time.time() < end and not target.exists():
            time.sleep(0.05)
        time.sleep(0.2)  # Chrome renames the finished file into place
        assert len(list(frames(target))) == 8 and packets(target, "audio") == packets(src, "audio")
    finally:
        driver.quit()
        server.close()
