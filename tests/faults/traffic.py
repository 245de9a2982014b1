"""Customer mail arriving continuously, as at a real MX: mail keeps coming while the IMAP
server is down and is queued until it can be appended again.

About a quarter of the mails are follow-ups that reply (In-Reply-To, References) to an
earlier mail of the same conversation, so articles on existing tickets are exercised too.
Each mail is recorded with the moment it was written and the moment its APPEND succeeded.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient

from mailbridge.demo.imap_server import EmbeddedImapServer
from tests.support.builders import mail

RETRY = 0.2  # seconds between attempts while the server is away
DOMAIN = "customers.example"


@dataclass(frozen=True, slots=True)
class Injected:
    message_id: str  # without angle brackets
    root: str  # the Message-ID of the conversation's first mail (its own for a new one)
    written_at: float  # time.monotonic() when the customer wrote it (queued at the MX)
    appended_at: float  # when its APPEND succeeded (later while the IMAP server is away)
    index: int  # position in Injector.injected, which is also the order of writing

    @property
    def is_new(self) -> bool:
        """The first mail of a conversation: it must make a ticket and be acknowledged."""
        return self.root == self.message_id


@dataclass(frozen=True, slots=True)
class _Draft:
    message_id: str
    root: str
    raw: bytes
    written_at: float


class Injector:
    """A thread appending generated customer mail to INBOX at `rate` mails per second."""

    def __init__(
        self, imap: EmbeddedImapServer, rate: float, seed: int, followups: float = 0.25
    ) -> None:
        self.injected: list[Injected] = []  # append-only; other threads read it
        self._imap = imap
        self._rate = rate
        self._rng = random.Random(seed)
        self._seed = seed
        self._followups = followups
        self._queue: deque[_Draft] = deque()
        self._lock = threading.Lock()
        self._burst = 0
        self._count = 0
        self._senders: dict[str, str] = {}  # root Message-ID -> From
        self._subjects: dict[str, str] = {}
        self._generating = threading.Event()
        self._done = threading.Event()
        self._wake = threading.Event()
        self._client: IMAPClient | None = None
        self._thread = threading.Thread(target=self._run, name="injector", daemon=True)
        self.failures = 0  # APPENDs that failed and were retried

    # -- control, from any thread --

    def start(self) -> None:
        self._generating.set()
        self._thread.start()

    def burst(self, n: int) -> None:
        """Queue n more mails at once, on top of the steady flow."""
        with self._lock:
            self._burst += n
        self._wake.set()

    def pause(self) -> None:
        """Generate no more mail; what is queued is still delivered."""
        self._generating.clear()
        self._wake.set()

    def resume(self) -> None:
        self._generating.set()

    def finish(self, timeout: float) -> bool:
        """Stop generating and wait until every queued mail is appended (the server must be
        up); True when the queue emptied in time. The thread then ends."""
        self.pause()
        deadline = time.monotonic() + timeout
        while self.queued and time.monotonic() < deadline:
            time.sleep(0.05)
        self._done.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)
        return not self.queued

    @property
    def written(self) -> int:
        """Mails written so far, appended or still queued: the first `written` entries of
        `injected`, once they are all appended."""
        return self._count

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue) + self._burst

    # -- the thread --

    def _run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._done.is_set():
                now = time.monotonic()
                if self._generating.is_set():
                    while now >= next_at:
                        self._compose()
                        next_at += self._rng.uniform(0.5, 1.5) / self._rate
                else:
                    next_at = now
                self._take_burst()
                if not self._deliver():
                    self._wake.wait(RETRY)
                else:
                    self._wake.wait(max(0.0, next_at - time.monotonic()))
                self._wake.clear()
        finally:
            self._disconnect()

    def _take_burst(self) -> None:
        with self._lock:
            n, self._burst = self._burst, 0
        for _ in range(n):
            self._compose()

    def _compose(self) -> None:
        number = self._count
        self._count += 1
        message_id = f"fault.{self._seed}.{number}@{DOMAIN}"
        delivered = self.injected
        if delivered and self._rng.random() < self._followups:
            parent = self._rng.choice(delivered[-200:])
            root = parent.root
            raw = mail(
                self._senders[root],
                "Re: " + self._subjects[root],
                f"Any news? (follow-up {number})\n",
                message_id=f"<{message_id}>",
                in_reply_to=f"<{parent.message_id}>",
                date=datetime.now(UTC),
            )
        else:
            root = message_id
            sender = f"Customer {number} <customer.{self._seed}.{number}@{DOMAIN}>"
            subject = f"Order {10000 + number} has not arrived"
            self._senders[root], self._subjects[root] = sender, subject
            raw = mail(
                sender,
                subject,
                f"Hello,\nwhere is order {10000 + number}?\n",
                message_id=f"<{message_id}>",
                date=datetime.now(UTC),
            )
        with self._lock:
            self._queue.append(_Draft(message_id, root, raw, time.monotonic()))

    def _deliver(self) -> bool:
        """Append what is queued, in order; False when the server could not be reached."""
        while True:
            with self._lock:
                if not self._queue:
                    return True
                draft = self._queue[0]
            try:
                self._connected().append("INBOX", draft.raw)
            except Exception:  # noqa: BLE001 - any failure: the server is away; retry later
                self.failures += 1
                self._disconnect()
                return False
            with self._lock:
                self._queue.popleft()
            self.injected.append(
                Injected(
                    draft.message_id,
                    draft.root,
                    draft.written_at,
                    time.monotonic(),
                    len(self.injected),
                )
            )

    def _connected(self) -> IMAPClient:
        if self._client is None:
            client = IMAPClient(self._imap.host, self._imap.port, ssl=False, timeout=5)
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.login(self._imap.username, self._imap.password)
            self._client = client
        return self._client

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        # The connection may be gone already; either way it is closed afterwards.
        with contextlib.suppress(Exception):
            client.logout()
        with contextlib.suppress(Exception):
            client.shutdown()
