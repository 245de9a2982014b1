"""LMTP for the tests: a daemon running in a thread of its own (so a module can share one),
and a client that reads LMTP's per-recipient answers, which smtplib.LMTP alone does not
(its sendmail reads one reply after DATA)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import sys
import threading
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from mailbridge.app import App
from mailbridge.service.daemon import Daemon


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Delivery:
    """What a server answered: per RCPT, then per accepted recipient after DATA."""

    rcpt: list[int] = field(default_factory=list)
    data: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # the DATA answers' texts


def deliver(
    where: str | tuple[str, int], raw: bytes, recipients: list[str], sender: str = "a@c.example"
) -> Delivery:
    """One LMTP transaction: `where` is a socket path or (host, port)."""
    client = smtplib.LMTP(timeout=30)
    try:
        if isinstance(where, str):
            client.connect(where)
        else:
            client.connect(*where)
        return _transaction(client, raw, recipients, sender)
    finally:
        client.close()


def _transaction(client: smtplib.LMTP, raw: bytes, recipients: list[str], sender: str) -> Delivery:
    client.ehlo_or_helo_if_needed()
    code, _ = client.mail(sender)
    assert code == 250, code
    result = Delivery()
    for recipient in recipients:
        result.rcpt.append(client.rcpt(recipient)[0])
    accepted = result.rcpt.count(250)
    if not accepted:
        return result
    replies = [client.data(raw)]
    replies += [client.getreply() for _ in range(accepted - 1)]
    result.data = [code for code, _ in replies]
    result.texts = [text.decode() for _, text in replies]
    return result


def _stacks() -> str:
    """Where every thread is, for a daemon that did not stop."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(
        f"--- {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
        for ident, frame in sys._current_frames().items()
    )


class DaemonThread:
    """`app`'s daemon running in a thread until the context ends; it stops cleanly then."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.daemon: Daemon | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.error: BaseException | None = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.daemon = Daemon(self.app)
        running = asyncio.create_task(self.daemon.run_forever())
        ready = asyncio.create_task(self.daemon.ready.wait())
        await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
        self._ready.set()
        try:
            await running
        except Exception as exc:  # noqa: BLE001 - told to the test, which asserts on it
            self.error = exc
        ready.cancel()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(30), "the daemon did not get ready"
        return self

    def stop(self) -> None:
        if self._loop is not None and self.daemon is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.daemon.stop)
        self._thread.join(40)
        assert not self._thread.is_alive(), "the daemon did not stop:\n" + _stacks()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
