"""A webhook endpoint for tests: the standard library's HTTP server on 127.0.0.1 in a
thread, answering each request as the test scripted it (a status, with headers; "hang"
past the client's timeout; "drop" the connection; "drip" an answer a byte at a time) and
keeping every request it received. 200 once the script is used up.

A test module starts one (the fixture `module_server`), and each test gets it emptied
(`server`): a module imports both and names them in its `__all__`."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

Answer = int | str | tuple[int, dict[str, str]]  # 500; "hang"; (429, {"Retry-After": "60"})
HANG_LIMIT = 30.0  # a hanging answer ends by itself after this


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when the body had arrived


@dataclass
class HookServer:
    """Start with `with HookServer() as server:`; `url()` is where to post."""

    scheme: str = "http"
    tls: ssl.SSLContext | None = None
    delay: float = 0.0  # seconds before each answer, so that senders overlap
    received: list[Received] = field(default_factory=list)
    _answers: deque[Answer] = field(default_factory=deque)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> HookServer:
        server = self

        class Handler(_Handler):
            hooks = server

        httpd = _Quiet(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            httpd.socket = self.tls.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, name="hook-server", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/hook") -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}{path}"

    def script(self, *answers: Answer) -> None:
        """Answer the next requests so, in order; 200 after them."""
        with self._lock:
            self._answers.extend(answers)

    def reset(self) -> None:
        with self._lock:
            self._answers.clear()
            self.received.clear()
        self.delay = 0.0
        self._released.set()  # let any hanging answer of the last test end
        self._released = threading.Event()

    def release(self) -> None:
        """End the hanging answers now (with a 200 nobody may be waiting for)."""
        self._released.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` requests, once they have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.received) >= count, f"{len(self.received)} of {count} requests came"
        return self.received[:count]

    def _next(self, request: Received) -> Answer:
        with self._lock:
            self.received.append(request)
            return self._answers.popleft() if self._answers else 200


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) breaks the pipe: expected


class _Handler(BaseHTTPRequestHandler):
    hooks: HookServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test output stays the test's

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        received = Received(self.command, self.path, headers, body, time.monotonic())
        answer = self.hooks._next(received)
        if self.hooks.delay:
            time.sleep(self.hooks.delay)
        if answer == "hang":
            self.hooks._released.wait(HANG_LIMIT)
            answer = 200
        if answer == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        if answer == "drip":
            self._drip()
            return
        status, extra = answer if isinstance(answer, tuple) else (int(answer), {})
        text = b"ok" if status < 300 else f"error {status}".encode()
        self.send_response(status)
        for name, value in {"Content-Length": str(len(text)), **extra}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(text)

    def _drip(self) -> None:
        """A status line, then a header byte every 0.2 s: never a whole answer."""
        with contextlib.suppress(OSError):
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            for _ in range(int(HANG_LIMIT / 0.2)):
                if self.hooks._released.is_set():
                    return
                self.wfile.write(b"X")
                self.wfile.flush()
                time.sleep(0.2)


@contextlib.contextmanager
def serving(cert: Path | None = None, key: Path | None = None) -> Iterator[HookServer]:
    """A running server; with `cert` and `key`, over TLS (https://localhost)."""
    tls = None
    if cert is not None and key is not None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    with HookServer(scheme="https" if tls else "http", tls=tls) as server:
        yield server


@pytest.fixture(scope="module")
def module_server() -> Iterator[HookServer]:
    with serving() as server:
        yield server


@pytest.fixture
def server(module_server: HookServer) -> Iterator[HookServer]:
    """The module's server, emptied; what a test left hanging is let go after it."""
    module_server.reset()
    yield module_server
    module_server.release()
