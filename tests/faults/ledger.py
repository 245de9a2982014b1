"""What became of every injected mail, read from the database and the SMTP sink.

While the run goes on, `Ledger.advance()` moves a frontier over the injected mails: a mail
is done once it is an article (a new conversation: a ticket) and, for a new conversation,
once the sink has accepted the ticket's acknowledgement. A recovery closes when the frontier
passes every mail written before its fault ended, including mail that was still queued
at the MX because the IMAP server was away. At the end, `Ledger.account()` counts
what was lost, duplicated and acknowledged.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, select

from mailbridge.db.models import Article, InboundMessage, Outbox, Ticket
from mailbridge.demo.smtp_sink import SmtpSink
from tests.faults.traffic import Injected, Injector

CHUNK = 400  # identifiers per IN (...) list


def bare(message_id: object) -> str:
    return str(message_id or "").strip().strip("<>")


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


@dataclass
class Recovery:
    """From the end of a fault until every mail injected before it is done."""

    label: str
    ended_at: float  # time.monotonic()
    upto: int  # mails written before the end (some may still wait at the MX then)
    done_at: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.ended_at


class SinkView:
    """The Message-IDs the sink accepted, counted, read incrementally."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink
        self._seen = 0
        self.counts: Counter[str] = Counter()

    def refresh(self) -> Counter[str]:
        received = list(self._sink.received)
        for accepted in received[self._seen :]:
            self.counts[bare(accepted.message["Message-ID"])] += 1
        self._seen = len(received)
        return self.counts


@dataclass
class Account:
    """The final reckoning, per mail and per ticket."""

    lost: list[Injected] = field(default_factory=list)
    tickets_of_conversation: dict[str, set[int]] = field(default_factory=dict)
    extra_articles: Counter[str] = field(default_factory=Counter)  # Message-ID -> repeats
    stray_tickets: set[int] = field(default_factory=set)  # tickets of no injected mail
    acks_of_ticket: dict[int, list[str]] = field(default_factory=dict)  # outbox ack rows
    deliveries: Counter[str] = field(default_factory=Counter)  # sink, by Message-ID
    unsent_acks: list[str] = field(default_factory=list)  # ack rows not in state sent
    quarantined: int = 0
    failed_outbox: int = 0
    unknown_deliveries: int = 0  # sink mail that is no acknowledgement row


class Ledger:
    def __init__(self, database_url: str, injector: Injector, sink: SmtpSink) -> None:
        self.engine: Engine = create_engine(database_url, pool_pre_ping=True)
        self.injector = injector
        self.sink = SinkView(sink)
        self.frontier = 0  # injected[:frontier] are done
        self._ticket_of: dict[str, int] = {}  # injected Message-ID -> its article's ticket
        self._ack_of: dict[int, str] = {}  # ticket -> its acknowledgement's Message-ID
        self._recoveries: list[Recovery] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0  # rounds that could not read the database (it may be down)
        self.last_error = ""

    # -- recoveries --

    def recovery(self, label: str) -> Recovery:
        """Start measuring a recovery now, the moment a fault ended."""
        with self._lock:
            tracked = Recovery(label, time.monotonic(), self.injector.written)
            self._recoveries.append(tracked)
        return tracked

    def wait(self, recoveries: Sequence[Recovery], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while any(r.done_at is None for r in recoveries):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def wait_for_all(self, timeout: float) -> bool:
        """Until every injected mail so far is done."""
        return self.wait([self.recovery("everything")], timeout)

    # -- the watching thread --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="ledger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def close(self) -> None:
        self.stop()
        self.engine.dispose()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.advance()
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down: next round
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def advance(self) -> int:
        """Move the frontier as far as the database and the sink allow; close recoveries."""
        injected = self.injector.injected[:]
        delivered = self.sink.refresh()
        waiting = [m for m in injected[self.frontier :] if not self._done(m, delivered)]
        if waiting:
            self._look_up(waiting)
        now = time.monotonic()
        while self.frontier < len(injected) and self._done(injected[self.frontier], delivered):
            self.frontier += 1
        with self._lock:
            for tracked in self._recoveries:
                if tracked.done_at is None and tracked.upto <= self.frontier:
                    tracked.done_at = now
        return self.frontier

    def is_done(self, mail: Injected) -> bool:
        """Whether the watching thread has seen this mail done (any mail, not only those
        below the frontier)."""
        return self._done(mail, self.sink.counts)

    def _done(self, mail: Injected, delivered: Counter[str]) -> bool:
        ticket = self._ticket_of.get(mail.message_id)
        if ticket is None:
            return False
        if not mail.is_new:
            return True
        ack = self._ack_of.get(ticket)
        return ack is not None and delivered[ack] > 0

    def _look_up(self, waiting: list[Injected]) -> None:
        unknown = [m.message_id for m in waiting if m.message_id not in self._ticket_of]
        with self.engine.connect() as connection:
            for chunk in _chunks(unknown):
                rows = connection.execute(
                    select(Article.message_id, Article.ticket_id).where(
                        Article.direction == "in", Article.message_id.in_(chunk)
                    )
                )
                for message_id, ticket_id in rows:
                    self._ticket_of.setdefault(bare(message_id), ticket_id)
            tickets = {
                self._ticket_of[m.message_id]
                for m in waiting
                if m.is_new and m.message_id in self._ticket_of
            }
            missing = sorted(t for t in tickets if t not in self._ack_of)
            for start in range(0, len(missing), CHUNK):
                acks = connection.execute(
                    select(Outbox.ticket_id, Outbox.message_id).where(
                        Outbox.kind == "ack", Outbox.ticket_id.in_(missing[start : start + CHUNK])
                    )
                )
                for acked, ack_id in acks:
                    if acked is not None:
                        self._ack_of[acked] = bare(ack_id)

    # -- kills between SMTP acceptance and marking --

    def accepted_unmarked(self) -> dict[str, int]:
        """Message-IDs the sink accepted whose outbox row is not marked sent, with how often
        the sink accepted each. Call it with the daemons frozen; one frozen between the two
        steps itself is counted too, which only ever loosens the bound on duplicates."""
        delivered = self.sink.refresh()
        with self.engine.connect() as connection:
            rows = connection.execute(select(Outbox.message_id).where(Outbox.state != "sent"))
            return {m: delivered[m] for m in (bare(m) for (m,) in rows) if delivered[m]}

    # -- the final reckoning --

    def account(self) -> Account:
        """Everything counted; call it once every daemon has stopped."""
        account = Account(deliveries=Counter(self.sink.refresh()))
        with self.engine.connect() as connection:
            articles = connection.execute(
                select(Article.message_id, Article.ticket_id).where(Article.direction == "in")
            )
            by_message: dict[str, list[int]] = {}
            for message_id, ticket_id in articles:
                by_message.setdefault(bare(message_id), []).append(ticket_id)
            tickets = set(connection.scalars(select(Ticket.id)))
            acks = connection.execute(
                select(Outbox.ticket_id, Outbox.message_id, Outbox.state).where(
                    Outbox.kind == "ack"
                )
            ).all()
            account.quarantined = len(
                connection.scalars(
                    select(InboundMessage.id).where(InboundMessage.state == "quarantined")
                ).all()
            )
            account.failed_outbox = len(
                connection.scalars(select(Outbox.id).where(Outbox.state == "failed")).all()
            )
        self._reckon_mail(account, by_message, tickets)
        for acked, ack_id, state in acks:
            if acked is not None:
                account.acks_of_ticket.setdefault(acked, []).append(bare(ack_id))
            if state != "sent":
                account.unsent_acks.append(bare(ack_id))
        known = {m for ids in account.acks_of_ticket.values() for m in ids}
        account.unknown_deliveries = sum(n for m, n in account.deliveries.items() if m not in known)
        return account

    def _reckon_mail(
        self, account: Account, by_message: dict[str, list[int]], tickets: set[int]
    ) -> None:
        claimed: set[int] = set()
        for mail in self.injector.injected:
            found = by_message.get(mail.message_id, [])
            if not found:
                account.lost.append(mail)
                continue
            repeats = len(found) - len(set(found))  # stored twice on the same ticket
            if repeats:
                account.extra_articles[mail.message_id] = repeats
            account.tickets_of_conversation.setdefault(mail.root, set()).update(found)
            claimed.update(found)
        account.stray_tickets = tickets - claimed
