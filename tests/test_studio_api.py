"""The studio's HTTP API, served in-process on a free port: every task on a tiny generated
image, bad uploads, the queue limit, cancel, the token, and names that try to escape."""
from __future__ import annotations

import io
import os
import shutil
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from studio_client import Client
from vitrestore.io.images import read_image
from vitrestore.studio.http import StudioServer
from vitrestore.studio.server import Studio
import vitrestore.tasks


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(w: int = 100_000, h: int = 100_000) -> bytes:
    """A PNG whose header claims w x h pixels (and whose data is tiny)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def start(**kw):
    host, token = kw.pop("host", "127.0.0.1"), kw.pop("token", None)
    studio = Studio(vitrestore.tasks, device="cpu", **kw)
    server = StudioServer(studio, host, 0, token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, Client(f"http://127.0.0.1:{server.server_address[1]}", token)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_weights):
    models = tmp_path_factory.mktemp("models")
    shutil.copy(tiny_weights, models / "tiny.safetensors")
    server, client = start(models_dir=models)
    yield server, client
    server.close()


PHOTO = smooth_image(np.random.default_rng(3), 72, 96)


@pytest.mark.slow  # shipped models
def test_every_task_runs_on_a_tiny_image(served):
    server, c = served
    status, img, _ = c.upload(png(PHOTO), "photo.png")
    assert status == 201 and (img["width"], img["height"]) == (96, 72)
    hole = np.zeros((72, 96), np.uint8)
    hole[20:40, 30:60] = 255
    _, m, _ = c.upload(png(hole), "mask.png")
    cases = [("denoise", {}, (72, 96), "photo_denoised.png"), ("denoise", {"sigma": 15}, (72, 96), None),
             ("upscale", {"scale": 2}, (144, 192), "photo_x2.png"),
             ("upscale", {"scale": 4, "kind": "real"}, (288, 384), None),
             ("inpaint", {"mask": m["id"]}, (72, 96), "photo_inpainted.png"),
             ("stylize", {"style": "starry-night", "strength": 0.5}, (72, 96), "photo_starry-night.png"),
             ("restore", {"model": "tiny.safetensors"}, (72, 96), None)]
    for task, options, shape, name in cases:
        status, job, _ = c.job(task, img["id"], **options)
        assert status == 202, job
        job = c.wait(job["id"])
        assert job["status"] == "done", (task, job)
        assert job["progress"]["done"] == job["progress"]["total"] >= 1
        status, data, headers = c.request("GET", f"/api/images/{job['result']}/file")
        out = np.asarray(Image.open(io.BytesIO(data)))
        assert status == 200 and out.shape[:2] == shape, task
        if name:
            assert f'filename="{name}"' in headers["Content-Disposition"]
        if task == "inpaint":
            keep = hole == 0
            assert np.array_equal(out[keep], PHOTO[keep]) and not np.array_equal(out[~keep], PHOTO[~keep])
            # keep editing the result: a second removal works on it and keeps the name
            _, job2, _ = c.job("inpaint", job["result"], mask=m["id"])
            job2 = c.wait(job2["id"])
            _, info, _ = c.request("GET", f"/api/images/{job2['result']}")
            assert job2["status"] == "done" and info["name"] == "photo_inpainted.png"


@pytest.mark.parametrize("data, status, words", [
    (b"not an image at all", 400, "not an image"),
    (png(PHOTO)[:200], 400, "photo.png"),
    (bomb_png(), 413, "too large"),
    (b"", 400, "empty"),
], ids=["text", "truncated", "bomb-header", "empty"])
def test_bad_uploads_answer_4xx_with_a_json_message(served, data, status, words):
    _, c = served
    got, body, _ = c.upload(data, "photo.png")
    assert got == status and words in body["error"], body


def test_bad_requests_answer_4xx(served):
    _, c = served
    _, img, _ = c.upload(png(PHOTO))
    _, small, _ = c.upload(png(np.zeros((10, 10), np.uint8)), "m.png")
    for task, options, words in [("inpaint", {"mask": small["id"]}, "10x10"), ("sharpen", {}, "task must be"),
                                 ("denoise", {"sigma": 900}, "sigma"), ("stylize", {"style": "monet"}, "unknown style"),
                                 ("restore", {"model": "../../etc/passwd"}, "unknown model"),
                                 ("upscale", {"scale": 2, "kind": "real"}, "x4 only")]:
        status, body, _ = c.job(task, img["id"], **options)
        assert status == 400 and words in body["error"], (task, body)
    status, body, _ = c.request("GET", "/api/images/nope/file")
    assert status == 404 and "error" in body
    status, body, _ = c.request("POST", "/api/jobs", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON" in body["error"]


def test_uploads_over_the_limit_are_refused_before_reading():
    server, c = start(max_upload_bytes=1000)
    try:
        status, body, _ = c.upload(png(PHOTO))
        assert status == 413 and "upload limit" in body["error"]
    finally:
        server.close()


@pytest.mark.slow  # shipped models
def test_full_queue_answers_429_and_queued_jobs_cancel():
    server, c = start(queue_size=1)
    try:
        _, img, _ = c.upload(png(PHOTO))
        server.studio.jobs.paused.set()  # the worker holds its first job
        _, first, _ = c.job("denoise", img["id"])
        assert server.studio.jobs.holding.wait(30)  # taken off the queue: the queue has room for one
        _, second, _ = c.job("denoise", img["id"])
        status, third, _ = c.job("denoise", img["id"])
        assert status == 429 and "queue is full" in third["error"]
        status, cancelled, _ = c.request("POST", f"/api/jobs/{second['id']}/cancel")
        assert status == 200 and cancelled["status"] == "cancelled"
        server.studio.jobs.paused.clear()
        assert c.wait(first["id"])["status"] == "done"
        assert c.wait(second["id"])["status"] == "cancelled"
    finally:
        server.close()


def test_a_running_job_stops_at_its_next_tile():
    server, c = start(tile=32)
    try:
        _, img, _ = c.upload(png(smooth_image(np.random.default_rng(1), 320, 320)))
        _, job, _ = c.job("denoise", img["id"])  # hundreds of 32 px tiles per pass, two passes
        while True:
            _, job, _ = c.request("GET", f"/api/jobs/{job['id']}")
            if job["progress"]["done"] > 0:
                break
        c.request("POST", f"/api/jobs/{job['id']}/cancel")
        job = c.wait(job["id"])
        p = job["progress"]
        assert job["status"] == "cancelled" and job["result"] is None
        assert p["passes"] == 1 and 0 < p["done"] < p["total"]
    finally:
        server.close()


def test_beyond_loopback_needs_a_token():
    studio = Studio(vitrestore.tasks, device="cpu")
    with pytest.raises(ValueError, match="--token"):
        StudioServer(studio, "0.0.0.0", 0, None)
    studio.close()
    server, c = start(host="0.0.0.0", token="s3cret")
    try:
        assert c.request("GET", "/api/info")[0] == 200
        c.token = "wrong"
        status, body, _ = c.request("GET", "/api/info")
        assert status == 401 and "token" in body["error"]
        assert c.request("GET", "/")[0] == 200  # the page itself loads, then asks for the token
    finally:
        server.close()


def test_names_cannot_escape_and_the_folder_goes_away(tmp_path):
    server, c = start()
    folder = server.studio.folder
    try:
        status, img, _ = c.upload(png(PHOTO), "../../../tmp/evil\\..\\x.png")
        assert status == 201 and img["name"] == "x.png"
        assert all(p.parent == folder for p in folder.rglob("*"))
        _, job, _ = c.job("denoise", img["id"])
        job = c.wait(job["id"])
        _, _, headers = c.request("GET", f"/api/images/{job['result']}/file")
        assert 'filename="x_denoised.png"' in headers["Content-Disposition"]
        c.host = "attacker.example:80"
        assert c.request("GET", "/api/info")[0] == 403  # DNS rebinding: a loopback studio answers only to its name
        c.host = None
        assert read_image(next(folder.glob("*.png"))).pixels.shape == (72, 96, 3)
    finally:
        server.close()
    assert not folder.exists()


@pytest.mark.slow
def test_cli_refuses_an_open_host_without_a_token_and_serves_on_loopback(tmp_path):
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "vitrestore", "studio", "--host", "0.0.0.0", "--no-browser"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--token" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = subprocess.run([sys.executable, "-m", "vitrestore", "studio", "--models", str(tmp_path / "nope"),
                              "--no-browser"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "vitrestore", "studio", "--port", "0", "--no-browser"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp)})
    try:
        line = proc.stderr.readline()  # "vitrestore studio: http://127.0.0.1:PORT/ ..."
        url = line.split()[2]
        assert url.startswith("http://127.0.0.1:")
        status, info, _ = Client(url).request("GET", "/api/info")
        assert status == 200 and "starry-night" in info["styles"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not list(tmp.glob("vitrestore-studio-*"))  # its private folder went with it
