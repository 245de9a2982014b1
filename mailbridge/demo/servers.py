"""In-process IMAP server and SMTP sink for `mailbridge demo` and the tests.

Each server runs its own asyncio loop in a daemon thread, so synchronous callers
(imapclient, the tests) and asynchronous ones (aiosmtplib) can both talk to it.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import socket
import ssl
import threading
import weakref
from collections import deque
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from types import TracebackType
from typing import Any, Self, TypeVar, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient
from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import DictBackend
from pymap.backend.dict.mailbox import MailboxData
from pymap.concurrent import Event, Subsystem
from pymap.imap import IMAPServer
from pymap.selected import SelectedMailbox
from pysasl.hashing import Cleartext

__all__ = ["EmbeddedImapServer", "ReceivedMail", "SmtpSink"]

_T = TypeVar("_T")
_LOCALHOST = "127.0.0.1"


def _report_earlier_news_when_idle_starts() -> None:
    """Make pymap's IDLE begin by reporting what changed since the session's last answer.

    pymap waits for the next change before it reports anything, so mail appended between
    a client's last command and its IDLE stayed unreported until DONE. Dovecot and Cyrus
    check the mailbox when IDLE starts; the embedded server now does the same.
    """
    original = MailboxData.update_selected

    async def update_selected(
        self: MailboxData, selected: SelectedMailbox, *, wait_on: Event | None = None
    ) -> SelectedMailbox:
        if wait_on is not None and selected.mod_sequence != self._mod_sequences.highest:
            wait_on = None
        return await original(self, selected, wait_on=wait_on)

    MailboxData.update_selected = update_selected  # type: ignore[method-assign]


_report_earlier_news_when_idle_starts()


def _check_security(security: str, tls_context: ssl.SSLContext | None) -> None:
    if security not in ("none", "starttls", "tls"):
        raise ValueError(f"security must be none, starttls or tls, not {security!r}")
    if security != "none" and tls_context is None:
        raise ValueError(f"security={security!r} needs a tls_context")


class _LoopThread:
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


class _Listener:
    """Start/stop/close bookkeeping shared by both servers: stop() keeps the loop."""

    def __init__(self, name: str, port: int) -> None:
        self.host = _LOCALHOST
        self.port = port
        self._name = name
        self._runner: _LoopThread | None = None
        self._server: asyncio.Server | None = None
        self._closed = False
        self._transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()

    def _loop_thread(self) -> _LoopThread:
        if self._runner is None:
            self._runner = _LoopThread(self._name)
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


class EmbeddedImapServer(_Listener):
    """A pymap server with the in-memory dict backend and one user.

    ``security`` is "none", "starttls" or "tls" (implicit); the latter two need
    ``tls_context`` (a server context), e.g. to test that clients refuse certificates
    they cannot verify.
    """

    def __init__(
        self,
        username: str = "support",
        password: str = "secret",
        *,
        port: int = 0,
        security: str = "none",
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__("embedded-imap", port)
        _check_security(security, tls_context)
        self.username = username
        self.password = password
        self.security = security
        self._tls_context = tls_context
        self._imap: IMAPServer | None = None
        self._proxy: ProxyProtocolReader | None = None

    async def _listen(self) -> asyncio.Server:
        if self._imap is None:
            # Created once, inside the loop, so the mailbox data outlives stop()/start().
            args = argparse.Namespace(
                host=_LOCALHOST,
                port=0,
                debug=False,
                cert=None,
                key=None,
                tls=self.security == "starttls",
                demo_data=False,
                demo_user=self.username,
                demo_password=self.password,
                passlib_cfg=None,
                inherited_sockets=None,
                proxy_protocol=None,
            )
            # cpu_subsystem: no private thread pool that would outlive close().
            # Cleartext: the password is held in memory in clear anyway, and the default
            # 500,000-round hash makes every login take a tenth of a second.
            backend, config = await DictBackend.init(
                args,
                secure_auth=False,
                invalid_user_sleep=0.0,
                cpu_subsystem=Subsystem.for_asyncio(),
                hash_context=Cleartext(),
                ssl_context=self._tls_context,
            )
            config.apply_context()
            self._imap = IMAPServer(backend.login, config)
            self._proxy = ProxyProtocolReader(config.proxy_protocol)
        assert self._proxy is not None
        return await asyncio.start_server(
            self._proxy.get_callback(self._serve),
            host=_LOCALHOST,
            port=self.port,
            ssl=self._tls_context if self.security == "tls" else None,
        )

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sock_info: Any
    ) -> None:
        assert self._imap is not None
        self._transports.add(cast(asyncio.Transport, writer.transport))
        await self._imap(reader, writer, sock_info)

    @contextmanager
    def client(self, timeout: float = 5.0) -> Iterator[IMAPClient]:
        """A logged-in imapclient connection; logged out when the block ends."""
        # Our own server: its certificate is whatever the test gave it.
        trust_all = ssl.create_default_context()
        trust_all.check_hostname = False
        trust_all.verify_mode = ssl.CERT_NONE
        implicit = self.security == "tls"
        with IMAPClient(
            self.host,
            self.port,
            ssl=implicit,
            ssl_context=trust_all if implicit else None,
            timeout=timeout,
        ) as client:
            # Without this, each APPEND waits out a delayed ACK (~40 ms) between the
            # command and its literal.
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.security == "starttls":
                client.starttls(trust_all)
            client.login(self.username, self.password)
            yield client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver one message over IMAP APPEND, creating the folder if needed."""
        self.append_many([raw], folder)

    def append_many(
        self, raws: Iterable[bytes], folder: str = "INBOX", *, timeout: float = 5.0
    ) -> None:
        """Deliver several messages over one connection, in order (each within timeout)."""
        with self.client(timeout) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in raws:
                client.append(folder, raw)

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """The raw bytes of every message in the folder, in UID order."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            if not uids:
                return []
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
            return [bytes(fetched[uid][b"BODY[]"]) for uid in uids if uid in fetched]

    def folders(self) -> list[str]:
        """Every folder name of the user."""
        with self.client() as client:
            return [str(name) for _flags, _delim, name in client.list_folders()]


@dataclass(frozen=True)
class ReceivedMail:
    """One message the sink accepted."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes = field(repr=False)
    mail_options: tuple[str, ...] = ()  # the MAIL FROM parameters: SMTPUTF8, BODY=8BITMIME
    message: EmailMessage = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed = email.message_from_bytes(self.raw, policy=default_policy)
        object.__setattr__(self, "message", parsed)


_DROP = (0, "")  # a scripted outcome meaning: cut the connection instead of answering


class SmtpSink(_Listener):
    """An aiosmtpd server that records what it accepts and can be told to misbehave.

    ``security`` is "none", "starttls" or "tls" (implicit); the latter two need
    ``tls_context`` (a server context). With ``username``/``password`` it offers AUTH
    and accepts only those credentials; authentication stays optional. With ``smtputf8``
    it offers SMTPUTF8 (RFC 6531): mail to and from internationalised addresses.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        security: str = "none",
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        smtputf8: bool = False,
    ) -> None:
        super().__init__("smtp-sink", port)
        _check_security(security, tls_context)
        self.security = security
        self.smtputf8 = smtputf8
        self._tls_context = tls_context
        self._credentials = (username, password) if username is not None else None
        self.received: list[ReceivedMail] = []
        self.connections = 0  # accepted so far, so tests can tell reuse from reconnects
        self._arrived = threading.Condition()
        self._script: deque[tuple[int, str]] = deque()
        self._always: tuple[int, str] | None = None
        self._refused: dict[str, tuple[int, str]] = {}
        self._cuts_mid_data = 0
        self.mid_data_cuts = 0  # connections cut mid-DATA so far, as drop_mid_data_next asked

    # -- behaviour switches (callable from any thread) --

    def fail_next(self, n: int, code: int = 451, message: str = "4.3.0 try again later") -> None:
        """Answer the next n DATA commands with this code instead of accepting."""
        with self._arrived:
            self._script.extend([(code, message)] * n)

    def drop_next(self, n: int) -> None:
        """Cut the connection after the data of each of the next n messages, before replying."""
        with self._arrived:
            self._script.extend([_DROP] * n)

    def drop_mid_data_next(self, n: int) -> None:
        """Cut the connection while each of the next n messages is still being transmitted:
        after the server's 354 and the first line of the data, with no reply."""
        with self._arrived:
            self._cuts_mid_data += n

    def fail_always(self, code: int, message: str) -> None:
        """Answer every DATA with this code until recover()."""
        with self._arrived:
            self._always = (code, message)

    def refuse_recipient(
        self, address: str, code: int = 550, message: str = "5.1.1 no such user"
    ) -> None:
        """Answer RCPT TO for this address with an error."""
        with self._arrived:
            self._refused[address.lower()] = (code, message)

    def recover(self) -> None:
        """Forget every scripted failure and refusal."""
        with self._arrived:
            self._script.clear()
            self._always = None
            self._refused.clear()
            self._cuts_mid_data = 0

    def wait_for(self, count: int, timeout: float = 15.0) -> list[ReceivedMail]:
        """Block until at least count messages have arrived; all of them, in order.

        It returns as soon as they are there: the timeout is for a machine under load."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} messages within {timeout}s, got {len(self.received)}"
                )
            return list(self.received)

    # -- aiosmtpd handler hooks (run in the sink's loop) --

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self._arrived:
            refusal = self._refused.get(address.lower())
        if refusal is not None:
            return f"{refusal[0]} {refusal[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._arrived:
            outcome = self._script.popleft() if self._script else self._always
            if outcome is None:
                mail = ReceivedMail(
                    str(envelope.mail_from),
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                    tuple(envelope.mail_options),
                )
                self.received.append(mail)
                self._arrived.notify_all()
                return f"250 2.0.0 OK queued as {len(self.received)}"
        if outcome == _DROP:
            cast(asyncio.Transport, server.transport).abort()
            return "421 4.3.0 connection dropped"  # never reaches the client
        return f"{outcome[0]} {outcome[1]}"

    def _take_mid_data_cut(self) -> bool:
        with self._arrived:
            if self._cuts_mid_data <= 0:
                return False
            self._cuts_mid_data -= 1
            self.mid_data_cuts += 1
            return True

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self._credentials is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self._credentials[0]
            and auth_data.password.decode() == self._credentials[1]
        )
        return AuthResult(success=ok, handled=False)

    # -- server plumbing --

    @property
    def _smtp_class(self) -> type[_TrackedSMTP]:
        return _TrackedSMTP

    def _protocol(self) -> SMTP:
        protocol = self._smtp_class(
            self,
            hostname="mailbridge-sink",
            loop=asyncio.get_running_loop(),
            tls_context=self._tls_context if self.security == "starttls" else None,
            authenticator=self._authenticate if self._credentials else None,
            enable_SMTPUTF8=self.smtputf8,
            # AUTH over plain text is fine for a local sink; it stays optional, which
            # keeps aiosmtpd from warning about it.
            auth_require_tls=False,
        )
        protocol.on_connect = self._track
        protocol.cut_mid_data = self._take_mid_data_cut
        return protocol

    def _track(self, transport: asyncio.Transport) -> None:
        # connection_made runs again on the TLS transport after STARTTLS.
        if transport.get_extra_info("sslcontext") is None or self.security == "tls":
            self.connections += 1
        self._transports.add(transport)

    async def _listen(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            self._protocol,
            host=_LOCALHOST,
            port=self.port,
            ssl=self._tls_context if self.security == "tls" else None,
        )


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, reporting its transport so the sink can cut it."""

    on_connect: Any = None
    cut_mid_data: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.on_connect is not None:
            self.on_connect(cast(asyncio.Transport, transport))

    async def smtp_DATA(self, arg: str) -> None:
        ready = self.envelope is not None and bool(self.envelope.rcpt_tos)
        if not ready or self.cut_mid_data is None or not self.cut_mid_data():
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")  # the first line of the message, no more
        cast(asyncio.Transport, self.transport).abort()
