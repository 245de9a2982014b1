"""The LMTP listener ([lmtp]): an MTA hands mail straight to the daemon, which stores it
(inbound/push.py) before answering 250, one answer per recipient after DATA (RFC 2033).

Any failure to store answers 451, so the MTA keeps the mail and tries again: nothing is
lost whatever breaks, and a retry of mail already stored is recognised by its fingerprint.
Work per client is bounded: connections at once, recipients per message, the message size
([tickets] max_message_size, 552 over it), the line length and an idle timeout.

aiosmtpd comes with the `lmtp` extra; only this module imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from mailbridge.app import App
from mailbridge.config import Config, LmtpConfig
from mailbridge.config.brands import brand_of
from mailbridge.core.envelope import header_safe, mailbox_for, recipient_routes
from mailbridge.db.outage import database_outage
from mailbridge.errors import describe_error
from mailbridge.inbound.push import Outcome, store_delivered
from mailbridge.service.health import Health

log = logging.getLogger(__name__)

COMPONENT = "lmtp"
# Used when [tickets] max_message_size is unset: a message is held in memory whole.
SIZE_CEILING = 100_000_000
# Longest line read from a client (aiosmtpd's reader buffer). RFC 5321 says 1000, but a
# 500 after DATA is a bounce to the customer: mail with longer lines is taken, as over IMAP.
LINE_LIMIT = 1 << 20

_REPLIES: dict[Outcome, str] = {
    "stored": "250 2.0.0 stored",
    "duplicate": "250 2.0.0 stored already",
    "refused": "451 4.3.0 the database refused the mail; try again later",
}
TRY_LATER = "451 4.3.0 cannot store the mail now; try again later"


def routes_of(config: Config) -> dict[str, str]:
    """Recipient address -> mailbox name: each [[mailbox]] address, and the envelope
    sender of its brand, where its mail's bounces come back (config/brands.py)."""
    return recipient_routes(
        ((m.name, m.address) for m in config.mailbox),
        ((m.name, brand_of(config, m).bounce_address) for m in config.mailbox),
    )


class _Delivery:
    """aiosmtpd's handler: recipients checked at RCPT, the mail stored at DATA."""

    def __init__(self, app: App, health: Health, stored: Callable[[], None]) -> None:
        self.app, self.health, self.stored = app, health, stored
        self.in_hand: set[asyncio.Future[Any]] = set()
        self._routes: tuple[Config, dict[str, str]] | None = None

    def routes(self) -> dict[str, str]:
        """The routes of the configuration in force, worked out once per reload."""
        config = self.app.config
        if self._routes is None or self._routes[0] is not config:
            self._routes = (config, routes_of(config))
        return self._routes[1]

    async def handle_MAIL(
        self, server: LMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address and not header_safe(address):
            return "553 5.1.7 the sender address is not one this server can write down"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: LMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        lmtp = self.app.config.lmtp
        if lmtp is not None and len(envelope.rcpt_tos) >= lmtp.max_recipients:
            return "452 4.5.3 too many recipients; send the rest in another transaction"
        if not header_safe(address) or mailbox_for(address, self.routes()) is None:
            return "550 5.1.1 no mailbox here for this recipient"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:
        # aiosmtpd writes what this returns as the reply: LMTP's one line per recipient,
        # in RCPT order, is these lines joined.
        routes = self.routes()
        reached: dict[str, list[str]] = {}
        mailbox_of: list[str | None] = []
        for recipient in envelope.rcpt_tos:
            name = mailbox_for(recipient, routes)  # None: removed by a reload since RCPT
            mailbox_of.append(name)
            if name is not None:
                reached.setdefault(name, []).append(recipient)
        raw = envelope.original_content or b""
        outcomes = await self._store(raw, envelope.mail_from or "", reached)
        replies = [
            TRY_LATER if name is None or outcomes is None else _REPLIES[outcomes[name]]
            for name in mailbox_of
        ]
        if outcomes and any(o == "stored" for o in outcomes.values()):
            self.stored()
        return "\r\n".join(replies)

    async def _store(
        self, raw: bytes, sender: str, reached: dict[str, list[str]]
    ) -> dict[str, Outcome] | None:
        """The outcome per mailbox; None when nothing could be stored (answered 451)."""
        if not reached:
            return None
        work = asyncio.ensure_future(
            asyncio.to_thread(store_delivered, self.app, raw, sender, reached)
        )
        self.in_hand.add(work)
        try:
            outcomes = await asyncio.shield(work)  # a dropped client does not undo a commit
        except Exception as exc:  # noqa: BLE001 - any failure: the MTA keeps the mail
            outage = database_outage(exc)
            detail = str(outage) if outage is not None else describe_error(exc)
            log.error("LMTP: mail of %d bytes not stored, answered 451: %s", len(raw), detail)
            self.health.failing(COMPONENT, f"cannot store delivered mail: {detail}")
            return None
        finally:
            self.in_hand.discard(work)
        self.health.set(COMPONENT, "listening")
        return outcomes


def _protocol_class(limit: int, live: set[LMTP]) -> type[LMTP]:
    class _Lmtp(LMTP):
        line_length_limit = LINE_LIMIT

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            live.add(self)
            if len(live) > limit:
                # Before the greeting: the client tries again later, as after any 421.
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"421 4.3.2 too many connections; try again later\r\n")
                transport.close()

        def connection_lost(self, error: Exception | None) -> None:
            live.discard(self)
            super().connection_lost(error)

    return _Lmtp


class LmtpListener:
    """The listening socket and its sessions; `close` stops taking mail, lets a store in
    hand finish, then drops the clients (they deliver again later)."""

    def __init__(self, app: App, health: Health, stored: Callable[[], None]) -> None:
        self.app, self.health = app, health
        self.delivery = _Delivery(app, health, stored)
        self._server: asyncio.Server | None = None
        self._live: set[LMTP] = set()

    @property
    def settings(self) -> LmtpConfig:
        assert self.app.config.lmtp is not None
        return self.app.config.lmtp

    async def start(self) -> None:
        settings = self.settings
        size = self.app.config.tickets.max_message_size or SIZE_CEILING
        protocol = _protocol_class(settings.max_connections, self._live)

        def factory() -> LMTP:
            return protocol(
                self.delivery,
                data_size_limit=size,
                enable_SMTPUTF8=True,
                decode_data=False,
                timeout=settings.timeout.total_seconds(),
                loop=loop,
            )

        loop = asyncio.get_running_loop()
        path, address = settings.socket_path, settings.tcp_address
        if address is not None:
            self._server = await loop.create_server(factory, *address)
        elif path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a socket left by a process that did not stop cleanly
            self._server = await loop.create_unix_server(factory, str(path))
            os.chmod(path, settings.socket_mode)
        self.health.set(COMPONENT, "listening", detail=settings.listen)
        log.info("LMTP: listening on %s", settings.listen)

    @property
    def port(self) -> int | None:
        """The TCP port listened on (useful with port 0); None for a socket."""
        if self._server is None or self.settings.socket_path is not None:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace: float) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        if self.delivery.in_hand:
            await asyncio.wait(set(self.delivery.in_hand), timeout=grace)
        for session in list(self._live):
            if session.transport is not None:
                session.transport.close()
        path = self.settings.socket_path
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.health.remove(COMPONENT)
        self._server = None
