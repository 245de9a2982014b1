"""A small world for SLA tests: an App on a real database with a frozen clock, mail arriving
through the real processing path, and the sweep. No mail servers: outbound mail stays in
the outbox, where the tests read it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Escalation, Event, Outbox, Ticket
from mailbridge.inbound.process import process_pending
from mailbridge.tickets.escalate import sweep
from tests.support.builders import make_config, stored
from tests.support.outbox import with_bytes

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Rome
H = timedelta(hours=1)
NOWHERE = SimpleNamespace(host="127.0.0.1", port=9, username="support", password="unused")

STAFF = {"team_address": "team@shop.example", "escalation_address": "lead@shop.example"}
THREE_STEPS = [
    {"at": "-1h", "notify": "team@shop.example"},
    {"at": "0", "notify": "lead@shop.example", "raise_priority": "high"},
    {"at": "+4h", "notify": "manager@shop.example", "raise_priority": "urgent"},
]


def policy(
    name: str = "standard", first: str = "8h", resolution: str = "5d", **keys: Any
) -> dict[str, Any]:
    return {"name": name, "first_response": first, "resolution": resolution, **keys}


class World:
    def __init__(self, app: App, clock: FrozenClock) -> None:
        self.app, self.clock = app, clock
        self._uid = 0

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)

    def at(self, offset: timedelta) -> None:
        """Move the clock to START + offset."""
        self.clock.advance(START + offset - self.clock.now())

    def receive(self, raw: bytes, mailbox: str = "support") -> None:
        """Store a message as fetch does (from `mailbox`), then process it."""
        self._uid += 1
        with self.app.transaction() as session:
            session.add(stored(raw, uid=self._uid, at=self.now, mailbox=mailbox))
        report = process_pending(self.app)
        assert report.failed == 0, report

    def sweep(self) -> int:
        return sweep(self.app)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.app.transaction() as session:
            yield session

    def ticket(self, number: int = 1000) -> Ticket:
        with self.app.sessions() as session:
            found = session.scalars(select(Ticket).where(Ticket.number == number)).one()
            return found

    def tickets(self) -> list[Ticket]:
        """Every ticket, by number."""
        with self.app.sessions() as session:
            return list(session.scalars(select(Ticket).order_by(Ticket.number)))

    def fired(self) -> list[tuple[str, int]]:
        with self.app.sessions() as session:
            rows = session.scalars(select(Escalation).order_by(Escalation.id))
            return [(row.deadline, row.level) for row in rows]

    def mails(self, kind: str | None = None) -> list[Outbox]:
        with self.app.sessions() as session:
            query = select(Outbox).order_by(Outbox.id)
            if kind is not None:
                query = query.where(Outbox.kind == kind)
            return with_bytes(self.app, list(session.scalars(query)))

    def events(self, *types: str) -> list[Event]:
        with self.app.sessions() as session:
            query = select(Event).order_by(Event.id)
            if types:
                query = query.where(Event.type.in_(types))
            return list(session.scalars(query))


def make_world(
    tmp_path: Path,
    database_url: str,
    *,
    sla: list[dict[str, Any]] | None = None,
    staff: dict[str, Any] | None = None,
    **sections: Any,
) -> World:
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        sla=sla or [policy()],
        staff=staff or STAFF,
        **sections,
    )
    clock = FrozenClock(START)
    return World(build_app(config, clock=clock), clock)


def text_of(row: Outbox) -> tuple[str, str]:
    """(subject, plain text body) of a queued mail."""
    message = message_from_bytes(row.raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())  # type: ignore[attr-defined]
    return str(message["Subject"]), text.replace("\r\n", "\n")
