"""The studio's HTTP layer: `StudioServer` (the standard library's threading server, bounded in
connections) and its `Handler`, which checks every request's access (Host, Origin, token), reads
its body (a Content-Length, JSON or an upload's bytes), routes it to the `Studio` and answers JSON
or a file with the security headers; the token's reading and checking."""
from __future__ import annotations

import hmac
import json
import os
import re
import shutil
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, unquote, urlparse

from .errors import ApiError, _one_line, _shown
from .store import CONTENT_TYPES

if TYPE_CHECKING:
    from .server import Studio

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "VITRESTORE_STUDIO_TOKEN"
MAX_JSON_BYTES = 64 * 1024  # a job is a few hundred bytes
UPLOAD_TYPES = ("application/octet-stream", "image/", "video/")  # a form (text/plain, multipart) is not an upload
# sent with every answer: no site may frame the page or load its images; the page runs only its own files
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"}


def content_disposition(name: str) -> str:
    """An attachment header for any file name: HTTP headers are Latin-1, a client's name may be in
    any script, so an ASCII `filename` for old clients and the UTF-8 `filename*` (RFC 5987/6266)."""
    stem, _, ext = name.rpartition(".")
    fallback = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "image"
    return f"attachment; filename=\"{fallback}.{ext}\"; filename*=UTF-8''{quote(name, safe='')}"


def check_token(token: str, what: str = "the token") -> str:
    if not re.fullmatch(r"[!-~]+", token):
        raise ValueError(f"{what} must be printable ASCII without spaces (it travels in an HTTP header)")
    return token


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """The studio's token: `token` (--token or $VITRESTORE_STUDIO_TOKEN), else the first line of
    `token_file`; ValueError in one line naming the file."""
    if token_file is None:
        return check_token(token) if token else None
    if token:
        raise ValueError("give the token once: --token-file, or --token / $" + TOKEN_ENV)
    try:
        with open(token_file, "rb") as f:
            raw = f.read(4097)
    except OSError as exc:
        raise ValueError(f"{token_file}: --token-file cannot be read ({exc.strerror or exc})") from None
    lines = raw.decode("latin-1").strip().splitlines()
    if len(raw) > 4096 or not lines or not lines[0].strip():
        raise ValueError(f"{token_file}: --token-file " + ("is over 4 kB" if len(raw) > 4096 else "is empty"))
    return check_token(lines[0].strip(), f"{token_file}: the token")


def _host_name(host: str) -> str:
    """A Host header's name: lower case, without the port or an IPv6 address's brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class Handler(BaseHTTPRequestHandler):
    server: "StudioServer"
    protocol_version = "HTTP/1.1"
    _responded = False  # the status line is out: a later error cannot answer again
    _unread = 0  # request body bytes not read: the connection cannot carry another request

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # a stalled client's read or write ends after this long
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (quiet: errors go to the page)
        pass

    def _log(self, text: str) -> None:
        self.server.log(f"{self.client_address[0]}: {self.command} {urlparse(self.path).path[:80]}: {text}")

    # --- plumbing ----------------------------------------------------------------------------
    def _send_head(self, status: int, content_type: str, length: int, headers: dict[str, str] | None = None) -> None:
        self._responded = True
        self.send_response(status)
        for k, v in {"Content-Type": content_type, "Content-Length": str(length), "Cache-Control": "no-store",
                     **SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(k, v)
        if self._unread or self.close_connection:  # the rest of the body is not read: no next request
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._send_head(status, content_type, len(body), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_file(self, path: Path, content_type: str, headers: dict[str, str]) -> None:
        """Streamed from disk: a large image is not read into memory per download."""
        try:
            f = open(path, "rb")
        except FileNotFoundError:  # dropped from the store meanwhile
            raise ApiError(404, "no such image (dropped: the upload store was full)") from None
        with f:
            self._send_head(200, content_type, os.fstat(f.fileno()).st_size, headers)
            if self.command != "HEAD":
                shutil.copyfileobj(f, self.wfile, 1 << 20)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (a bad request line, headers too long) as JSON too."""
        self.close_connection = True
        try:
            self._json(code, {"error": message or HTTPStatus(code).phrase})
        except OSError:
            pass

    def _fail(self, status: int, message: str) -> None:
        if self._responded:  # mid-answer: a second status line would land inside the body
            self.close_connection = True
            self._log(f"failed while answering: {message}")
            return
        try:
            self._json(status, {"error": message})
        except OSError:  # the client is gone
            self.close_connection = True

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "Transfer-Encoding is not supported: send the body with a Content-Length")
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        text = values.pop() if len(values) == 1 else "0" if not values else None
        if text is None or not re.fullmatch(r"[0-9]{1,15}", text):
            self.close_connection = True  # where the body ends is unknown
            raise ApiError(400, "Content-Length must be one whole number of bytes, got "
                                f"{_shown(', '.join(sorted(self.headers.get_all('Content-Length'))))}")
        return int(text)

    def _read(self, n: int) -> bytes:
        data = self.rfile.read(min(n, self._unread))
        self._unread -= len(data)
        return data

    def _check_access(self, api: bool) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            raise ApiError(400, "several Host headers")
        host = hosts[0].strip().lower() if hosts else ""
        if self.server.loopback and _host_name(host) not in LOOPBACK:
            raise ApiError(403, f"this studio answers only on 127.0.0.1 / localhost / [::1], not "
                                f"{_shown(_host_name(host)) if host else 'no host'}")
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() not in (f"http://{host}", f"https://{host}"):
            raise ApiError(403, f"requests from other sites are refused (Origin {_shown(origin)})")
        site = self.headers.get("Sec-Fetch-Site", "same-origin")
        if api and site not in ("same-origin", "none"):
            raise ApiError(403, f"requests from other sites are refused (Sec-Fetch-Site {_shown(site)})")
        given = self.headers.get("X-Vitrestore-Token") or ""
        if api and self.server.token and not hmac.compare_digest(given.encode("latin-1", "replace"),
                                                                 self.server.token.encode()):
            raise ApiError(401, "a token is required (X-Vitrestore-Token header): the studio's, from --token-file, "
                                f"${TOKEN_ENV} or --token")

    def _body_json(self) -> dict[str, Any]:
        kind = _media_type(self.headers.get("Content-Type"))
        if kind != "application/json":
            raise ApiError(415, f"the body must be JSON (Content-Type: application/json), got {_shown(kind or 'none')}")
        if self._unread > MAX_JSON_BYTES:
            raise ApiError(413, f"the body is over {MAX_JSON_BYTES // 1024} kB")
        n = self._unread
        raw = self._read(n)
        if len(raw) < n:
            raise ApiError(400, "the body ended early")
        try:
            data = json.loads(raw or b"{}", parse_constant=_no_constant)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError, NaN
            raise ApiError(400, "the body is not JSON") from None
        except RecursionError:
            raise ApiError(400, "the body is not JSON the studio takes: nested too deeply") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def _handle(self, method: str) -> None:
        try:
            self._responded, self._unread = False, 0  # per request: one connection carries several
            self._unread = self._content_length()
            self._route(method)
        except ApiError as exc:
            if exc.log:
                self._log(str(exc))
            self._fail(exc.status, str(exc))
        except TimeoutError:  # a stalled client: its thread and partial upload go
            self.close_connection = True
            self._log(f"no data for {self.server.idle_timeout:g} s: connection closed")
            self._fail(408, f"no data for {self.server.idle_timeout:g} s")
        except ConnectionError as exc:  # the client went away (an aborted upload, a closed tab)
            self.close_connection = True
            self._log(f"the client closed the connection ({_one_line(exc)})")
        except Exception as exc:  # noqa: BLE001  (never a stack trace to the page)
            self._log(f"internal error: {type(exc).__name__}: {_one_line(exc)}")
            self._fail(500, f"internal error: {_one_line(exc)}")

    def _route(self, method: str) -> None:
        studio = self.server.studio
        path = urlparse(self.path).path
        if method == "GET" and path in STATIC:
            self._check_access(api=False)
            name, kind = STATIC[path]
            return self._send(200, (resources.files("vitrestore.studio") / "static" / name).read_bytes(), kind)
        if not path.startswith("/api/"):
            self._check_access(api=False)
            raise ApiError(404, f"no page {_shown(path)}")
        self._check_access(api=True)
        parts = path.strip("/").split("/")[1:]  # after "api"
        if method == "GET" and parts == ["info"]:
            return self._json(200, studio.info())
        if method == "GET" and parts == ["tasks"]:
            return self._json(200, studio.planner.schema())
        if method == "GET" and len(parts) == 3 and parts[0] == "styles" and parts[2] == "thumbnail":
            return self._send(200, studio.style_thumbnail(parts[1]), "image/png")
        if method == "POST" and parts == ["images"]:
            kind = _media_type(self.headers.get("Content-Type"))
            if kind != UPLOAD_TYPES[0] and not kind.startswith(UPLOAD_TYPES[1:]):
                raise ApiError(415, "an upload is the file's bytes with Content-Type image/..., video/... or "
                                    f"application/octet-stream, not {_shown(kind or 'none')}")
            name = unquote(self.headers.get("X-Filename") or "image")
            image_id = studio.store.add_image(self._read, self._unread, name)
            return self._json(201, studio.store.image(image_id).public(image_id))
        if method == "GET" and len(parts) == 3 and parts[0] == "images" and parts[2] in ("file", "preview"):
            img = studio.store.image(parts[1])
            if parts[2] == "preview":
                return self._send(200, studio.store.preview(parts[1]), "image/png")
            return self._send_file(img.path, CONTENT_TYPES[img.suffix],
                                   {"Content-Disposition": content_disposition(f"{img.stem}{img.suffix}")})
        if method == "GET" and len(parts) == 4 and parts[0] == "images" and parts[2] == "frames":
            if not re.fullmatch(r"[0-9]{1,9}", parts[3]):
                raise ApiError(404, f"no frame {_shown(parts[3])}: a frame is its index, 0 for the first")
            png, seconds = studio.store.frame(parts[1], int(parts[3]))
            return self._send(200, png, "image/png", {"X-Frame-Time": f"{seconds:.6f}"})
        if method == "GET" and len(parts) == 2 and parts[0] == "images":
            return self._json(200, studio.store.image(parts[1]).public(parts[1]))
        if method == "POST" and parts == ["jobs"]:
            return self._json(202, studio.submit(self._body_json()).public())
        if method == "POST" and parts == ["preview"]:
            png, box = studio.preview(self._body_json())
            return self._send(200, png, "image/png", {"X-Crop": ",".join(map(str, box))})
        if method == "POST" and parts == ["draft"]:
            return self._send(200, studio.draft(self._body_json()), "image/png")
        if len(parts) >= 2 and parts[0] == "jobs":
            job = studio.jobs.jobs.get(parts[1])
            if job is None:
                raise ApiError(404, f"no job {_shown(parts[1])}")
            if method == "GET" and len(parts) == 2:
                return self._json(200, job.public())
            if method == "POST" and parts[2:] == ["cancel"]:
                return self._json(200, studio.jobs.cancel(job.id).public())
        raise ApiError(404, f"no API route {method} {_shown(path)}")

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _not_allowed(self) -> None:
        self.close_connection = True  # a body, if any, is not read
        self._send(405, json.dumps({"error": f"method {self.command} is not allowed (GET, HEAD, POST)"}).encode(),
                   "application/json", {"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815  (a cross-site preflight ends here)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _stderr_log(text: str) -> None:
    print(f"vitrestore studio: {text}", file=sys.stderr, flush=True)


class StudioServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, studio: Studio, host: str = "127.0.0.1", port: int = 7860, token: str | None = None,
                 idle_timeout: float = 30.0, max_connections: int = 64, log: Callable[[str], None] | None = None):
        """`idle_timeout`: seconds a connection may wait on its client; `max_connections` at once
        (one thread each; more are answered 503); `log(line)`: one line per client failure (stderr)."""
        self.loopback = host in LOOPBACK
        if not self.loopback and not token:
            raise ValueError(f"--host {host} makes the studio reachable from other machines: give a --token")
        self.studio, self.token = studio, check_token(token) if token else None
        self.idle_timeout, self.log = idle_timeout, log or _stderr_log
        self._slots = threading.BoundedSemaphore(max_connections)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET  # --host ::1 is IPv6
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if self.loopback:
            host = "[::1]" if self.address_family == socket.AF_INET6 else "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):  # every thread busy: refuse rather than grow
            body = b'{"error": "too many connections; try again"}'
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """One line, never a traceback (an exception outside a request's own handling)."""
        self.log(f"{client_address[0]}: {_one_line(sys.exc_info()[1] or RuntimeError('unknown error'))}")

    def close(self) -> bool:
        """Stop serving (from another thread than serve_forever's) and close the studio."""
        self.shutdown()
        self.server_close()
        return self.studio.close()
