"""A loopback TCP relay that can cut the line: a network fault in front of a real server.

`cut()` drops every relayed connection and stops listening (clients get "connection
refused", as from a server that went away); `restore()` listens again on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

from mailbridge.demo.listener import LoopThread

__all__ = ["TcpProxy"]


class TcpProxy:
    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._runner: LoopThread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._runner is not None, "use TcpProxy as a context manager"
        return self._runner.run(coro)

    def restore(self) -> None:
        self._server = self._run(self._listen())

    def cut(self) -> None:
        self._run(self._cut())

    async def _listen(self) -> asyncio.Server:
        server = await asyncio.start_server(self._relay, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def __enter__(self) -> Self:
        self._runner = LoopThread("tcp-proxy")
        self.restore()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()
        if self._runner is not None:
            self._runner.close()  # cancels and awaits the relays still running
