"""In-process SMTP sink (aiosmtpd) for `mailbridge demo` and the tests: it records what it
accepts and can be told to misbehave.
"""

from __future__ import annotations

import asyncio
import email
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailbridge.demo.listener import LOCALHOST, Listener, check_security

__all__ = ["ReceivedMail", "SmtpSink"]


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


class SmtpSink(Listener):
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
        check_security(security, tls_context)
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
            host=LOCALHOST,
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
