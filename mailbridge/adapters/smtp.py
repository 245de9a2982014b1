"""Hand raw messages to an SMTP server (aiosmtplib).

It moves bytes and decides, in `_translate_errors` only, whether a failure is
transient (4xx, connection trouble, timeouts) or permanent (5xx, refused login,
unverifiable certificate, a server lacking what the settings demand, or lacking the
SMTPUTF8 a mail to an internationalised address needs). It logs in with a
password, or with an OAuth2 access token (SASL XOAUTH2, else OAUTHBEARER).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple, Self

import aiosmtplib

from mailbridge.adapters.tls import verifying_context
from mailbridge.core.oauth import (
    SaslFailure,
    TokenSource,
    choose_mechanism,
    describe_sasl_failure,
    oauthbearer_response,
    xoauth2_response,
)
from mailbridge.errors import DeliveryError, PermanentError, TransientError

__all__ = [
    "Delivery",
    "PartialDeliveryError",
    "Refusal",
    "SmtpConnection",
    "SmtpSettings",
    "send_message",
]

log = logging.getLogger(__name__)

SECURITY_MODES = ("tls", "starttls", "none")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # tls | starttls | none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    # None means adapters/tls.py's shared context: certificates and host names are verified.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    local_hostname: str | None = None  # the EHLO name; None: this machine's FQDN
    # Set: log in as `username` with its OAuth2 access token instead of the password.
    oauth: TokenSource | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {SECURITY_MODES}, not {self.security!r}")


class Refusal(NamedTuple):
    """The server's answer to a recipient it refused."""

    code: int  # 4xx: for now, 5xx: for good
    text: str


@dataclass(frozen=True)
class Delivery:
    """What the server did with one message, recipient by recipient."""

    recipients: tuple[str, ...]
    reply: str  # the server's answer to the data; "" when it refused every recipient
    refused: Mapping[str, Refusal]  # by recipient

    @property
    def accepted(self) -> tuple[str, ...]:
        return tuple(r for r in self.recipients if r not in self.refused)


class PartialDeliveryError(PermanentError):
    """The server took the message for some recipients and refused the others.

    Retrying would deliver twice to those who got it, hence permanent.
    """

    def __init__(
        self, message: str, *, code: int | None, reply: str, refused: dict[str, Refusal]
    ) -> None:
        super().__init__(message, code=code)
        self.reply = reply
        self.refused = refused


class SmtpConnection:
    """One SMTP session for sending several messages; an async context manager.

    After a transient connection failure the session is gone: open a new one.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None

    def __repr__(self) -> str:
        s = self.settings
        state = "connected" if self.is_connected else "closed"
        return f"<SmtpConnection {s.host}:{s.port} {s.security} {state}>"

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect, secure the session as configured and log in when a username is set."""
        await self.close()
        s = self.settings
        # First, so that a token endpoint that fails is not reported as the SMTP server.
        token = await asyncio.to_thread(s.oauth.access_token) if s.oauth is not None else None
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            username=None if token else s.username,
            password=None if token else s.password,
            local_hostname=s.local_hostname,
            use_tls=s.security == "tls",
            # False, not None: None would try STARTTLS whenever the server offers it.
            start_tls=s.security == "starttls",
            tls_context=None if s.security == "none" else s.ssl_context or verifying_context(),
        )
        with _translate_errors(s, "connect"):
            await client.connect()
        if token is not None:
            try:
                with _translate_errors(s, "login"):
                    await self._bearer_login(client, token)
            except BaseException:
                client.close()
                raise
        self._client = client
        log.debug("connected to %s:%d (%s)", s.host, s.port, s.security)

    async def _bearer_login(self, client: aiosmtplib.SMTP, token: str) -> None:
        """AUTH with the token; when refused, once more with a refreshed one."""
        s = self.settings
        assert s.oauth is not None and s.username
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        mechanism = choose_mechanism(client.server_auth_methods)
        if mechanism is None:
            offered = ", ".join(client.server_auth_methods) or "none"
            raise aiosmtplib.SMTPException(
                f"no XOAUTH2 or OAUTHBEARER among the server's AUTH mechanisms ({offered})"
            )
        refusal = await _authenticate(client, mechanism, s.username, token, s.host, s.port)
        if refusal is None:
            return
        if refusal.code != 535:  # 535 5.7.8 refuses the credentials; this is something else
            raise refusal
        log.info(
            "SMTP %s refused the access token of %s (%s); refreshing it once",
            s.host,
            s.username,
            refusal.message,
        )
        s.oauth.invalidate(token)
        token = await asyncio.to_thread(s.oauth.access_token)
        again = await _authenticate(client, mechanism, s.username, token, s.host, s.port)
        if again is not None:
            raise aiosmtplib.SMTPAuthenticationError(
                again.code,
                f"{again.message}, again with a freshly refreshed token: check the "
                f"scopes the app was granted and that the sign-in was made as {s.username}",
            )

    async def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> str:
        """Send raw as is to recipients; returns the server's reply to the data.

        A refused recipient is an error: PartialDeliveryError when others were accepted.
        """
        delivery = await self.deliver(raw, sender, recipients)
        if not delivery.refused:
            return delivery.reply
        if delivery.accepted:
            raise _partial_delivery(delivery)
        listing = "; ".join(f"{a}: {code} {text}" for a, (code, text) in delivery.refused.items())
        where = f"SMTP send via {self.settings.host}:{self.settings.port}"
        # Retrying helps only if every refusal was temporary.
        worst = max(code for code, _ in delivery.refused.values())
        raise _by_code(worst, f"{where}: all recipients refused ({listing})")

    async def deliver(self, raw: bytes, sender: str, recipients: Sequence[str]) -> Delivery:
        """Send raw as is, reporting refused recipients instead of raising for them.

        Raises TransientError or PermanentError when the message as a whole failed.
        """
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        client = self._client
        if client is None or not client.is_connected:
            raise TransientError(f"SMTP send via {self.settings.host}: not connected")
        with _translate_errors(self.settings, "send"):
            options = await self._mail_options(client, raw, sender, recipients)
            try:
                refused, reply = await client.sendmail(
                    sender, list(recipients), raw, mail_options=options
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                # aiosmtplib has reset the envelope: the session stays usable.
                every = {r.recipient: Refusal(r.code, r.message) for r in exc.recipients}
                return Delivery(tuple(recipients), "", every)
        details = {address: Refusal(r.code, r.message) for address, r in refused.items()}
        return Delivery(tuple(recipients), reply, details)

    async def _mail_options(
        self, client: aiosmtplib.SMTP, raw: bytes, sender: str, recipients: Sequence[str]
    ) -> list[str]:
        """SMTPUTF8 (RFC 6531) when an address or a header is not ASCII, with BODY=8BITMIME
        when the server takes it; SMTPNotSupported (permanent) when it cannot take it."""
        addresses = [sender, *recipients]
        if all(a.isascii() for a in addresses) and raw.partition(b"\r\n\r\n")[0].isascii():
            return []
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        if not client.supports_extension("smtputf8"):
            which = ", ".join(a for a in addresses if not a.isascii()) or "its headers"
            raise aiosmtplib.SMTPNotSupported(
                f"the mail needs SMTPUTF8 (RFC 6531) for {which}, and the server does not offer it"
            )
        options = ["SMTPUTF8"]
        if not raw.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        return options

    async def close(self) -> None:
        """QUIT; never raises."""
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        protocol = client.protocol
        try:
            await client.quit()
        except Exception:  # the session is being abandoned either way
            log.debug("QUIT failed", exc_info=True)
            client.close()
        if protocol is not None:
            await _until_closed(protocol)


async def send_message(
    settings: SmtpSettings, raw: bytes, sender: str, recipients: Sequence[str]
) -> str:
    """Send one message over a connection of its own; returns the server's reply."""
    async with SmtpConnection(settings) as connection:
        return await connection.send(raw, sender, recipients)


async def _authenticate(
    client: aiosmtplib.SMTP, mechanism: str, user: str, token: str, host: str, port: int
) -> aiosmtplib.SMTPAuthenticationError | None:
    """One AUTH exchange; None when accepted, else the refusal with the server's JSON error.

    By hand rather than aiosmtplib's auth_xoauth2: OAUTHBEARER too, and the error challenge
    (which names the status and scope wanted) is kept for the message.
    """
    if mechanism == "XOAUTH2":
        initial = xoauth2_response(user, token)
    else:
        initial = oauthbearer_response(user, token, host, port)
    response = await client.execute_command(b"AUTH", mechanism.encode(), base64.b64encode(initial))
    failure: SaslFailure | None = None
    if response.code == 334:
        failure = describe_sasl_failure(_decoded(response.message))
        # RFC 7628 3.2.3: a dummy answer (^A) ends the exchange; XOAUTH2 wants an empty line.
        dummy = b"" if mechanism == "XOAUTH2" else base64.b64encode(b"\x01")
        response = await client.execute_command(dummy)
    if response.code == 235:
        return None
    said = f" (server said: {failure})" if failure is not None and str(failure) else ""
    return aiosmtplib.SMTPAuthenticationError(
        response.code, f"AUTH {mechanism} answered: {response.message}{said}"
    )


def _decoded(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return text.encode()


async def _until_closed(protocol: asyncio.BaseProtocol, limit: float = 1.0) -> None:
    """Give a TLS shutdown the few loop turns it needs to close the socket.

    Closing a TLS transport only starts the close_notify exchange; a caller that
    ends its event loop right after close() (asyncio.run) would leak the socket.
    aiosmtplib offers nothing to await, so watch for connection_lost, briefly.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while getattr(protocol, "transport", None) is not None and loop.time() < deadline:
        await asyncio.sleep(0.005)


def _partial_delivery(delivery: Delivery) -> PartialDeliveryError:
    details = dict(delivery.refused)
    listing = "; ".join(f"{a}: {code} {text}" for a, (code, text) in details.items())
    return PartialDeliveryError(
        f"SMTP server refused some recipients ({listing}); the others were accepted",
        code=next(iter(details.values()))[0],
        reply=delivery.reply,
        refused=details,
    )


def _by_code(code: int, message: str) -> DeliveryError:
    if 400 <= code < 500:
        return TransientError(message, code=code)
    if 500 <= code < 600:
        return PermanentError(message, code=code)
    return TransientError(message, code=code if code > 0 else None)


def _cert_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def _translate_errors(settings: SmtpSettings, action: str) -> Iterator[None]:
    """The one place where SMTP failures become TransientError or PermanentError."""
    where = f"SMTP {action} via {settings.host}:{settings.port}"
    secret = settings.password or ""
    try:
        yield
    except aiosmtplib.SMTPAuthenticationError as exc:
        text = exc.message.replace(secret, "***") if secret else exc.message
        raise _by_code(
            exc.code, f"{where}: login refused for user {settings.username!r}: {exc.code} {text}"
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _by_code(exc.code, f"{where}: {exc.code} {exc.message}") from exc
    except (
        aiosmtplib.SMTPServerDisconnected,
        aiosmtplib.SMTPConnectError,
        aiosmtplib.SMTPTimeoutError,
        TimeoutError,
        OSError,
    ) as exc:
        cert = _cert_failure(exc)
        if cert is not None:
            raise PermanentError(
                f"{where}: certificate verification failed: {cert.verify_message}"
            ) from exc
        raise TransientError(f"{where}: {exc}") from exc
    except aiosmtplib.SMTPException as exc:
        # What remains is the server lacking what the settings ask for (STARTTLS, AUTH).
        raise PermanentError(f"{where}: {exc}") from exc
    except ValueError as exc:
        # aiosmtplib refuses addresses it cannot send safely (e.g. non-ASCII without SMTPUTF8).
        raise PermanentError(f"{where}: {exc}") from exc
