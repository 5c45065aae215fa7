"""The studio against hostile clients and hostile stops: options that spell paths, requests from
other sites, malformed bodies, stalled and aborted uploads, names in any script, a full upload
store, signals while a job runs, folders left by dead studios, bad settings at start."""
from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from studio_client import Client
import vitrestore.tasks
from vitrestore.studio.http import StudioServer, read_token
from vitrestore.studio.server import Studio
from vitrestore.studio.store import PID_FILE, PREFIX, stale_folders

PHOTO = smooth_image(np.random.default_rng(5), 72, 96)


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def start(host: str = "127.0.0.1", token: str | None = None, server_kw: dict | None = None, **kw):
    studio = Studio(vitrestore.tasks, device="cpu", **kw)
    server = StudioServer(studio, host, 0, token, **(server_kw or {}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, Client(server.url, token)


@pytest.fixture(scope="module")
def served():
    server, client = start()
    yield server, client
    server.close()


def raw(server, data: bytes, wait: float = 10) -> tuple[int, dict, bytes]:
    """Send bytes as they are; (status, headers, body) of the answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=wait) as s:
        s.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < _length(got):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def _length(got: bytes) -> int:
    for line in got.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def post(server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    port = server.server_address[1]
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"127.0.0.1:{port}", "Connection": "close", **headers}.items())
    return raw(server, f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body)


# --- 4: options are values, never paths --------------------------------------------------------
def test_a_path_in_an_option_is_refused_alike_whether_it_exists_or_not(served, tmp_path):
    server, c = served
    _, img, _ = c.upload(png(PHOTO))
    (tmp_path / "exists.safetensors").write_bytes(b"x")
    answers = set()
    for kind in ["/etc/shadow", "/etc/passwd", "/no/such/file", str(tmp_path / "exists.safetensors"),
                 str(tmp_path / "missing.safetensors"), "denoise", "upscale-x2", "../../etc/hosts"]:
        status, body, _ = c.job("upscale", img["id"], scale=4, kind=kind)
        assert status == 400 and "option 'kind' must be one of classic, real" in body["error"], body
        answers.add(body["error"].split(", got")[0])
    assert len(answers) == 1  # no oracle: the same answer for files that exist and files that do not
    for task, options, words in [("stylize", {"style": "/etc/passwd"}, "unknown style"),
                                 ("stylize", {"style": str(tmp_path / "exists.safetensors")}, "unknown style"),
                                 ("restore", {"model": "/etc/passwd"}, "unknown model"),
                                 ("restore", {"model": str(tmp_path / "exists.safetensors")}, "unknown model")]:
        status, body, _ = c.job(task, img["id"], **options)
        assert status == 400 and words in body["error"], (task, body)
    assert not server.studio._models  # nothing was loaded, so nothing was cached


@pytest.mark.slow  # shipped models
def test_model_names_never_resolve_in_the_working_directory(tmp_path, monkeypatch):
    for name in ("denoise", "denoise.safetensors", "style-starry-night", "starry-night"):
        (tmp_path / name).write_bytes(b"not weights")  # a file that shadows a shipped name
    monkeypatch.chdir(tmp_path)
    server, c = start()
    try:
        _, img, _ = c.upload(png(PHOTO))
        for task, options in [("denoise", {}), ("stylize", {"style": "starry-night", "strength": 0.5})]:
            status, job, _ = c.job(task, img["id"], **options)
            assert status == 202, job
            assert c.wait(job["id"])["status"] == "done"
        status, data, _ = c.request("GET", "/api/styles/starry-night/thumbnail")
        assert status == 200 and data.startswith(b"\x89PNG")
    finally:
        server.close()


@pytest.mark.parametrize("options, words", [
    ({"sigma": True}, "option 'sigma' must be a number"),
    ({"sigma": "15"}, "option 'sigma' must be a number"),
    ({"sigma": [15]}, "option 'sigma' must be a number"),
    ({"sigma": 1e300}, "option 'sigma' must be a number from 0 to 255"),
    ({"sgma": 15}, "unknown option \"sgma\""),
], ids=["bool", "string", "list", "huge", "unknown"])
def test_denoise_options_are_type_checked(served, options, words):
    _, c = served
    _, img, _ = c.upload(png(PHOTO))
    status, body, _ = c.job("denoise", img["id"], **options)
    assert status == 400 and words in body["error"], body
    assert len(body["error"].splitlines()) == 1


@pytest.mark.parametrize("task, options, words", [
    ("upscale", {"scale": "2"}, "option 'scale' must be one of 2, 4"),
    ("upscale", {"scale": True}, "option 'scale' must be one of 2, 4"),
    ("upscale", {"scale": 3}, "option 'scale' must be one of 2, 4"),
    ("upscale", {"scale": 2, "outscale": 3}, "unknown option \"outscale\""),
    ("inpaint", {"mask": "MASK", "texture": "false"}, "option 'texture' must be true or false"),
    ("inpaint", {"mask": "MASK", "texture": 0}, "option 'texture' must be true or false"),
    ("inpaint", {"mask": ["MASK"]}, "option 'mask' must be the id"),
    ("stylize", {"style": "starry-night", "strength": False}, "option 'strength' must be a number"),
    ("restore", {"model": {"path": "/etc/passwd"}}, "unknown model"),
], ids=["scale-string", "scale-bool", "scale-3", "unknown", "texture-string", "texture-int", "mask-list",
        "strength-bool", "model-object"])
def test_every_option_is_type_checked_before_any_model_loads(served, task, options, words):
    server, c = served
    _, img, _ = c.upload(png(PHOTO))
    if options.get("mask") == "MASK":
        _, m, _ = c.upload(png(np.zeros((72, 96), np.uint8)), "m.png")
        options = {**options, "mask": m["id"]}
    status, body, _ = c.job(task, img["id"], **options)
    assert status == 400 and words in body["error"] and body["error"].startswith(task), body


def test_the_job_itself_is_checked(served):
    server, c = served
    _, img, _ = c.upload(png(PHOTO))
    for body, words in [({"task": "denoise", "image": img["id"], "priority": 1}, "unknown key \"priority\""),
                        ({"task": "denoise", "image": [img["id"]]}, "image must be the id"),
                        ({"task": ["denoise"], "image": img["id"]}, "task must be one of"),
                        ({"task": "denoise", "image": img["id"], "options": [1]}, "options must be a JSON object")]:
        status, answer, _ = c.request("POST", "/api/jobs", json.dumps(body).encode(),
                                      {"Content-Type": "application/json"})
        assert status == 400 and words in answer["error"], answer
    status, answer, _ = c.request("POST", "/api/jobs", b'{"task": "denoise", "image": "x", "options": {"sigma": NaN}}',
                                  {"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in answer["error"]
    status, answer, _ = c.request("POST", "/api/jobs", json.dumps({"task": "denoise", "image": "x" * 5000}).encode(),
                                  {"Content-Type": "application/json"})
    assert status == 404 and len(answer["error"]) < 200  # a client's value is not echoed whole


# --- malformed requests: 4xx, never 500 --------------------------------------------------------
@pytest.mark.parametrize("headers, body, status, words", [
    ({"Content-Length": "abc", "Content-Type": "application/json"}, b"", 400, "Content-Length"),
    ({"Content-Length": "-5", "Content-Type": "application/json"}, b"", 400, "Content-Length"),
    ({"Content-Length": "1e3", "Content-Type": "application/json"}, b"", 400, "Content-Length"),
    ({"Transfer-Encoding": "chunked", "Content-Type": "application/json"}, b"2\r\n{}\r\n0\r\n\r\n", 411,
     "Content-Length"),
    ({"Content-Type": "application/json"}, b"[" * 30_000 + b"]" * 30_000, 400, "nested too deeply"),
    ({"Content-Type": "application/json"}, b"{" * 50_000, 400, "JSON"),
    ({"Content-Type": "application/json"}, b"[]", 400, "JSON object"),
    ({"Content-Type": "application/json"}, b"\xff\xfe{", 400, "not JSON"),
    ({"Content-Type": "application/json"}, b" " * 70_000, 413, "over 64 kB"),
], ids=["letters", "negative", "exponent", "chunked", "deep", "unclosed", "array", "bytes", "big"])
def test_malformed_job_requests_answer_4xx(served, headers, body, status, words):
    server, _ = served
    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        headers = {**headers, "Content-Length": str(len(body))}
    got, h, answer = post(server, "/api/jobs", body, headers)
    assert got == status and words in json.loads(answer)["error"], answer[:200]
    assert h["Content-Type"] == "application/json"


def test_one_connection_carries_answers_and_errors_alike(served):
    server, c = served
    _, img, _ = c.upload(png(PHOTO))
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        for path, status in [("/api/info", 200), ("/favicon.ico", 404), (img["file"], 200), ("/api/images/x", 404),
                             ("/", 200), ("/api/jobs/x", 404)]:
            conn.request("GET", path)
            res = conn.getresponse()
            body = res.read()
            assert res.status == status, (path, body[:100])
            if status == 404:
                assert "error" in json.loads(body)
    finally:
        conn.close()


def test_unknown_methods_and_bad_request_lines_answer_json(served):
    server, _ = served
    port = server.server_address[1]
    for request in [f"OPTIONS /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\n"
                    f"Access-Control-Request-Method: POST\r\n\r\n",
                    "DELETE /api/images/x HTTP/1.1\r\nHost: x\r\n\r\n"]:
        status, headers, body = raw(server, request.encode())
        assert status == 405 and "not allowed" in json.loads(body)["error"]
        assert "Access-Control-Allow-Origin" not in headers
    status, headers, body = raw(server, b"GET / x HTTP/1.1\r\n\r\n")
    assert status == 400 and "error" in json.loads(body)


# --- 5: other sites, framing, the upload store -------------------------------------------------
def test_requests_from_other_sites_are_refused(served):
    server, c = served
    port = server.server_address[1]
    photo = png(PHOTO)
    for headers in [{"Origin": "http://evil.example", "Content-Type": "text/plain"},
                    {"Origin": "http://evil.example", "Content-Type": "application/octet-stream"},
                    {"Origin": "null", "Content-Type": "application/octet-stream"},
                    {"Origin": f"http://localhost:{port + 1}", "Content-Type": "application/octet-stream"},
                    {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/octet-stream"},
                    {"Sec-Fetch-Site": "same-site", "Content-Type": "application/octet-stream"}]:
        status, body, _ = c.request("POST", "/api/images", photo, headers)
        assert status == 403 and "other sites" in body["error"], (headers, body)
    before = len(server.studio.images)
    _, img, _ = c.upload(photo)
    job = json.dumps({"task": "denoise", "image": img["id"]}).encode()
    status, body, _ = c.request("POST", "/api/jobs", job, {"Origin": "http://evil.example",
                                                           "Content-Type": "application/json"})
    assert status == 403
    status, body, _ = c.request("POST", "/api/jobs", job, {"Content-Type": "text/plain"})  # a form's body
    assert status == 415 and "application/json" in body["error"]
    for kind in ["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]:
        status, body, _ = c.request("POST", "/api/images", photo, {"Content-Type": kind})
        assert status == 415 and "Content-Type" in body["error"], kind
    status, _, body = post(server, "/api/images", photo, {"Content-Length": str(len(photo))})  # no type at all
    assert status == 415 and "not \"none\"" in json.loads(body)["error"]
    assert len(server.studio.images) == before + 1  # only the same-origin upload was kept
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert c.upload(photo, "ok.png", same)[0] == 201  # the page itself
    assert c.upload(photo, "ok.png", {"Content-Type": "image/png"})[0] == 201


def test_no_site_can_frame_the_page(served):
    _, c = served
    for path in ["/", "/app.js", "/api/info", "/api/nope"]:
        _, _, headers = c.request("GET", path)
        assert headers["X-Frame-Options"] == "DENY", path
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
    c.host = "rebound.example:80"  # DNS rebinding: the page itself is not served under a foreign name
    try:
        assert c.request("GET", "/")[0] == 403
    finally:
        c.host = None


def test_the_upload_store_is_bounded_and_the_oldest_unused_go_first():
    photo = png(PHOTO)
    n = len(photo)
    server, c = start(max_upload_bytes=n, max_store_bytes=3 * n + n // 2)
    try:
        ids = [c.upload(photo, f"p{i}.png")[1]["id"] for i in range(3)]
        c.request("GET", f"/api/images/{ids[0]}")  # used: now the second is the least recently used
        server.studio.jobs.paused.set()  # the worker holds the job: its image stays needed
        status, job, _ = c.job("denoise", ids[0])
        assert status == 202
        for i in range(6):
            assert c.upload(photo, f"q{i}.png")[0] == 201
        folder = server.studio.folder
        on_disk = sum(p.stat().st_size for p in folder.iterdir() if p.name != PID_FILE)
        assert on_disk <= 3 * n + n // 2 and len(server.studio.images) == 3
        assert c.request("GET", f"/api/images/{ids[0]}")[0] == 200  # a queued job's image is kept
        status, body, _ = c.request("GET", f"/api/images/{ids[1]}")
        assert status == 404 and "dropped" in body["error"]
    finally:
        server.studio.jobs.paused.clear()
        server.close()


def test_the_store_counts_images_too():
    server, c = start(max_images=4)
    try:
        small = png(np.zeros((16, 16, 3), np.uint8))
        for i in range(20):
            assert c.upload(small, f"s{i}.png")[0] == 201
        assert len(server.studio.images) == 4
        assert len(list(server.studio.folder.glob("*.png"))) == 4
    finally:
        server.close()


# --- 6: the token without the process list; stalled clients -----------------------------------
def test_the_token_comes_from_a_file(tmp_path):
    f = tmp_path / "token"
    f.write_text("s3cret-token\n")
    assert read_token(None, f) == "s3cret-token"
    assert read_token("from-env", None) == "from-env"
    assert read_token("", None) is None
    for content, words in [("", "is empty"), ("\n\n", "is empty"), ("has space\n", "printable ASCII"),
                           ("x" * 5000, "over 4 kB"), ("tök\n", "printable ASCII")]:
        f.write_text(content)
        with pytest.raises(ValueError, match=words):
            read_token(None, f)
    with pytest.raises(ValueError, match="cannot be read"):
        read_token(None, tmp_path / "missing")
    with pytest.raises(ValueError, match="give the token once"):
        read_token("a", f)


def test_the_token_is_compared_whatever_its_bytes(tmp_path):
    server, c = start(host="0.0.0.0", token="s3cret")
    try:
        for given in ["s3cre", "s3cret ", "\xe9\xe9", "s3cret" * 100]:
            c.token = given
            assert c.request("GET", "/api/info")[0] == 401
    finally:
        server.close()


def test_a_stalled_upload_is_closed_and_leaves_no_file():
    lines: list[str] = []
    server, c = start(server_kw={"idle_timeout": 0.5, "log": lines.append})
    try:
        port = server.server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png\r\n"
                      f"Content-Length: 100000\r\n\r\n".encode() + png(PHOTO)[:1000])
            t0 = time.time()
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
            assert time.time() - t0 < 5  # closed by the server, not by our timeout
        assert answer.startswith(b"HTTP/1.1 408")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # an idle keep-alive connection
            s.sendall(f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            t0 = time.time()
            while s.recv(65536):
                pass
            assert time.time() - t0 < 5
        assert not list(server.studio.folder.glob("*.upload"))
        assert len(lines) == 1 and "no data for 0.5 s" in lines[0], lines
    finally:
        server.close()


def test_connections_beyond_the_limit_are_refused_not_threaded():
    server, c = start(server_kw={"max_connections": 2, "idle_timeout": 5})
    port = server.server_address[1]
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.2)
        status, _, body = raw(server, f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert status == 503 and "too many connections" in json.loads(body)["error"]
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert c.request("GET", "/api/info")[0] == 200
    server.close()


# --- 7: names in any script --------------------------------------------------------------------
@pytest.mark.parametrize("name, shown, fallback", [
    ("фото.png", "фото.png", "image.png"), ("写真 2.png", "写真_2.png", "2.png"),
    ("sun🌻garden.png", "sun_garden.png", "sun_garden.png"), ("café ☕.png", "café.png", "caf.png")])
def test_downloads_of_names_in_any_script(served, name, shown, fallback):
    server, c = served
    status, img, _ = c.upload(png(PHOTO), quote(name))
    assert status == 201
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", img["file"])
    res = conn.getresponse()
    data = res.read()
    conn.close()
    disposition = res.getheader("Content-Disposition")
    assert res.status == 200 and data == png(PHOTO)
    assert f'filename="{fallback}"' in disposition
    assert f"filename*=UTF-8''{quote(img['name'], safe='')}" in disposition
    assert img["name"] == shown


# --- 9: stopping while a job runs; folders of dead studios ------------------------------------
def test_close_cancels_the_running_job_and_waits_for_the_worker():
    server, c = start(tile=32)
    _, img, _ = c.upload(png(smooth_image(np.random.default_rng(1), 320, 320)))
    _, job, _ = c.job("denoise", img["id"])
    while c.request("GET", f"/api/jobs/{job['id']}")[1]["progress"]["done"] == 0:
        time.sleep(0.02)
    folder = server.studio.folder
    assert server.close() is True
    assert server.studio.jobs.jobs[job["id"]].status == "cancelled"
    assert not server.studio.jobs._worker.is_alive() and not folder.exists()


def test_a_new_studio_removes_folders_of_dead_studios_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def folder(name: str, pid: str | None) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "abc.png").write_bytes(b"x")
        if pid is not None:
            (d / PID_FILE).write_text(pid)
        return d

    gone = folder(PREFIX + "dead", str(dead.pid))
    kept = [folder(PREFIX + "alive", str(os.getppid())), folder(PREFIX + "nopid", None),
            folder(PREFIX + "junk", "not a pid"), folder("other-dead", str(dead.pid))]
    (tmp_path / (PREFIX + "link")).symlink_to(kept[1])
    assert stale_folders(tmp_path) == [gone]
    studio = Studio(vitrestore.tasks, device="cpu", temp_root=tmp_path)
    try:
        assert not gone.exists() and all(k.exists() for k in kept)
        assert (studio.folder / PID_FILE).read_text().strip() == str(os.getpid())
        assert stale_folders(tmp_path) == []  # a live studio's folder is never stale
    finally:
        studio.close()


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["INT", "TERM", "HUP"])
def test_a_signal_while_a_job_runs_stops_cleanly(tmp_path, sig, code):
    proc = subprocess.Popen([sys.executable, "-m", "vitrestore", "studio", "--port", "0", "--no-browser"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        c = Client(proc.stderr.readline().split()[2])
        _, img, _ = c.upload(png(smooth_image(np.random.default_rng(2), 600, 600)))
        _, job, _ = c.job("denoise", img["id"])
        while c.request("GET", f"/api/jobs/{job['id']}")[1]["progress"]["done"] == 0:
            time.sleep(0.05)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == code, proc.stderr.read()
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()
    assert not list(tmp_path.glob(PREFIX + "*"))


# --- 11: an aborted upload is one line in the log ----------------------------------------------
@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_an_aborted_upload_is_one_line_in_the_log(capfd, reset):
    server, c = start()
    try:
        port = server.server_address[1]
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"POST /api/images HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png\r\n"
                  f"X-Filename: photo.png\r\nContent-Length: 5000000\r\n\r\n".encode() + b"\x89PNG" + b"x" * 200_000)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        time.sleep(1)
        assert c.request("GET", "/api/info")[0] == 200  # still serving
        assert not list(server.studio.folder.glob("*.upload"))
    finally:
        server.close()
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "vitrestore studio: 127.0.0.1: POST /api/images:" in err[0], err


# --- minor: cancel reaches inpainting's texture step -------------------------------------------
@pytest.mark.slow  # the shipped inpaint model
def test_cancel_reaches_the_texture_step(monkeypatch):
    import vitrestore.tasks.inpaint as inpaint

    started, cancelled = threading.Event(), threading.Event()
    real = inpaint.exemplar_fill

    def slow_fill(*args, **kw):  # the texture step has begun: cancel now, then let it run
        started.set()
        assert cancelled.wait(30)
        return real(*args, **kw)

    monkeypatch.setattr(inpaint, "exemplar_fill", slow_fill)
    server, c = start()
    try:
        _, img, _ = c.upload(png(PHOTO))
        hole = np.zeros((72, 96), np.uint8)
        hole[16:56, 20:76] = 255  # deep enough for texture
        _, m, _ = c.upload(png(hole), "mask.png")
        _, job, _ = c.job("inpaint", img["id"], mask=m["id"], texture=True)
        assert started.wait(60)
        c.request("POST", f"/api/jobs/{job['id']}/cancel")
        cancelled.set()
        job = c.wait(job["id"])
        assert job["status"] == "cancelled" and job["result"] is None
    finally:
        cancelled.set()
        server.close()


# --- minor: IPv6 loopback; settings that would fail every job ---------------------------------
def test_ipv6_loopback_serves():
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 on this machine")
    server, c = start(host="::1")
    try:
        assert server.url.startswith("http://[::1]:")
        status, info, _ = c.request("GET", "/api/info")
        assert status == 200 and "denoise" in info["tasks"]
    finally:
        server.close()


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("args, env, words", [
    (["--device", "cuda"], {}, "CUDA"),
    ([], {"VITRESTORE_BACKEND": "garbage"}, "VITRESTORE_BACKEND"),
    ([], {"VITRESTORE_CPU_BF16": "garbage"}, "VITRESTORE_CPU_BF16"),
    (["--token-file", "/no/such/token"], {}, "cannot be read"),
], ids=["cuda", "backend", "bf16", "token-file"])
def test_settings_that_would_fail_every_job_stop_the_start(args, env, words):
    if args[:2] == ["--device", "cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    res = subprocess.run([sys.executable, "-m", "vitrestore", "studio", "--port", "0", "--no-browser", *args],
                         capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], res.stderr


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("how", ["env", "file"])
def test_the_cli_takes_the_token_from_the_environment_or_a_file(tmp_path, how):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    args = ["--host", "0.0.0.0", "--port", "0", "--no-browser"]
    if how == "env":
        env["VITRESTORE_STUDIO_TOKEN"] = "from-the-env"
    else:
        (tmp_path / "token").write_text("from-the-env\n")
        args += ["--token-file", str(tmp_path / "token")]
    proc = subprocess.Popen([sys.executable, "-m", "vitrestore", "studio", *args], stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        lines = [proc.stderr.readline(), proc.stderr.readline()]  # the warning, then the address
        assert "from-the-env" not in " ".join(lines) and "--token shows" not in " ".join(lines)
        port = lines[1].split()[2].rsplit(":", 1)[1].strip("/")
        c = Client(f"http://127.0.0.1:{port}", "from-the-env")
        assert c.request("GET", "/api/info")[0] == 200
        c.token = "wrong"
        assert c.request("GET", "/api/info")[0] == 401
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 143
