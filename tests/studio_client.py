"""A small client for the studio's HTTP API, used by the API and browser tests."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


class Client:
    def __init__(self, base: str, token: str | None = None, host: str | None = None):
        self.base, self.token, self.host = base.rstrip("/"), token, host

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, parsed JSON or raw bytes, response headers)."""
        h = dict(headers or {})
        if self.token:
            h["X-Vitrestore-Token"] = self.token
        if self.host:
            h["Host"] = self.host
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                status, data, rh = res.status, res.read(), res.headers
        except urllib.error.HTTPError as err:
            status, data, rh = err.code, err.read(), err.headers
        if (rh.get("Content-Type") or "").startswith("application/json"):
            data = json.loads(data)
        return status, data, rh

    def upload(self, data: bytes, name: str = "photo.png", headers: dict | None = None):
        h = {"X-Filename": name, "Content-Type": "application/octet-stream", **(headers or {})}
        return self.request("POST", "/api/images", data, h)

    def job(self, task: str, image: str, **options):
        body = json.dumps({"task": task, "image": image, "options": options}).encode()
        return self.request("POST", "/api/jobs", body, {"Content-Type": "application/json"})

    def wait(self, job_id: str, timeout: float = 120) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            _, job, _ = self.request("GET", f"/api/jobs/{job_id}")
            if job["status"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.05)
        raise TimeoutError(job_id)
