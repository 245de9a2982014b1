"""A tiny HTTP/1.1 listener for /healthz and /metrics: GET and HEAD, one request per
connection, nothing else. It runs in the daemon's event loop, so a loop that stops turning
stops answering, which a monitor sees as well."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["Response", "WebServer"]

log = logging.getLogger(__name__)

REQUEST_LIMIT = 16 * 1024
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


Handler = Callable[[], Awaitable[Response]]


class WebServer:
    def __init__(self, host: str, port: int, routes: dict[str, Handler]) -> None:
        self.host = host
        self.port = port
        self._routes = routes
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=REQUEST_LIMIT
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "serving /healthz and /metrics on http://%s:%d",
            f"[{self.host}]" if ":" in self.host else self.host,
            self.port,
        )

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            response, head_only = await self._answer(reader)
            writer.write(_encode(response, head_only))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return _plain(HTTPStatus.BAD_REQUEST), False
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method not in ("GET", "HEAD"):
            return _plain(HTTPStatus.METHOD_NOT_ALLOWED), False
        handler = self._routes.get(path)
        if handler is None:
            return _plain(HTTPStatus.NOT_FOUND), method == "HEAD"
        try:
            return await handler(), method == "HEAD"
        except Exception:  # one bad request must not take the listener down
            log.exception("answering %s %s failed", method, path)
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR), method == "HEAD"


def _plain(status: HTTPStatus) -> Response:
    return Response(status.value, f"{status.phrase}\n".encode(), "text/plain; charset=utf-8")


def _encode(response: Response, head_only: bool) -> bytes:
    reason = HTTPStatus(response.status).phrase
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    return head if head_only else head + response.body
