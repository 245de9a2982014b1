"""What the in-process IMAP server and SMTP sink share: the start/stop/close bookkeeping of
a server on 127.0.0.1.

Each server runs its own asyncio loop in a daemon thread, so synchronous callers
(imapclient, the tests) and asynchronous ones (aiosmtplib) can both talk to it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

__all__ = ["LOCALHOST", "Listener", "LoopThread", "check_security"]

_T = TypeVar("_T")
LOCALHOST = "127.0.0.1"


def check_security(security: str, tls_context: ssl.SSLContext | None) -> None:
    if security not in ("none", "starttls", "tls"):
        raise ValueError(f"security must be none, starttls or tls, not {security!r}")
    if security != "none" and tls_context is None:
        raise ValueError(f"security={security!r} needs a tls_context")


class LoopThread:
    """An asyncio loop running in a daemon thread, driven from other threads."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        # Cancel and await every task first: a task or transport left for the garbage
        # collector surfaces as an unraisable warning, which the test suite treats as an error.
        self.run(self._cancel_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)
        self.loop.close()

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()


class Listener:
    """Start/stop/close bookkeeping shared by both servers: stop() keeps the loop."""

    def __init__(self, name: str, port: int) -> None:
        self.host = LOCALHOST
        self.port = port
        self._name = name
        self._runner: LoopThread | None = None
        self._server: asyncio.Server | None = None
        self._closed = False
        self._transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()

    def _loop_thread(self) -> LoopThread:
        if self._runner is None:
            self._runner = LoopThread(self._name)
        return self._runner

    def start(self) -> Self:
        """Listen on 127.0.0.1: a free port the first time, the same port after stop()."""
        if self._closed:
            raise RuntimeError(f"{self._name} was closed; make a new one")
        if self._server is None:
            runner = self._loop_thread()
            self._server = runner.run(self._listen())
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection; start() serves the same data again."""
        if self._server is not None and self._runner is not None:
            self._runner.run(self._unlisten(self._server))
        self._server = None

    def close(self) -> None:
        """stop(), then end the loop thread. The object cannot be started again."""
        self.stop()
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()

    def drop_connections(self) -> None:
        """Close every open client connection from the server side, abruptly."""
        if self._runner is not None:
            self._runner.run(self._abort_all())

    async def _listen(self) -> asyncio.Server:
        raise NotImplementedError

    async def _abort_all(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        # Let the protocols see connection_lost before anyone reconnects.
        await asyncio.sleep(0)

    async def _unlisten(self, server: asyncio.Server) -> None:
        server.close()
        await self._abort_all()
        await server.wait_closed()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
