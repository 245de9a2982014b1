"""In-process IMAP server (pymap, in memory) for `mailbridge demo` and the tests."""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from imapclient import IMAPClient
from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import DictBackend
from pymap.backend.dict.mailbox import MailboxData
from pymap.concurrent import Event, Subsystem
from pymap.imap import IMAPServer
from pymap.selected import SelectedMailbox
from pysasl.hashing import Cleartext

from mailbridge.demo.listener import LOCALHOST, Listener, check_security

__all__ = ["EmbeddedImapServer"]


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


class EmbeddedImapServer(Listener):
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
        check_security(security, tls_context)
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
                host=LOCALHOST,
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
            host=LOCALHOST,
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
