"""The hostile-mail suite: every test writes the mail an attacker would send and runs it
through the real daemon (`Daemon.run_once`) against the embedded IMAP server and SMTP sink,
on SQLite and on PostgreSQL. Each asserts what the attacker must not achieve, and that the
ordinary mail beside it still gets its ticket and acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Article, Event, InboundMessage, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.service.daemon import Daemon, PassReport
from tests.support.builders import make_config
from tests.support.outbox import with_bytes

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MX = "mx.shop.example"  # the trusted MTA's authserv-id
STAFF = {
    "addresses": ["alice@shop.example", "bob@shop.example"],
    "domains": ["shop.example"],
    "team_address": "team@shop.example",
    "escalation_address": "lead@shop.example",
    "trusted_authserv_id": MX,
}


@dataclass
class World:
    """One mailbridge with its servers; `deliver` then `run` is one daemon pass."""

    app: App
    imap: EmbeddedImapServer
    smtp: SmtpSink
    clock: FrozenClock

    def deliver(self, *raws: bytes) -> None:
        self.imap.append_many(raws)

    def run(self) -> PassReport:
        report = asyncio.run(Daemon(self.app).run_once())
        assert report.ok, report
        return report

    def tickets(self) -> list[Ticket]:
        with self.app.sessions() as session:
            return list(session.scalars(select(Ticket).order_by(Ticket.id)))

    def ticket(self, number: int) -> Ticket:
        with self.app.sessions() as session:
            return session.scalars(select(Ticket).where(Ticket.number == number)).one()

    def articles(self, number: int) -> list[Article]:
        with self.app.sessions() as session:
            query = (
                select(Article)
                .join(Ticket, Ticket.id == Article.ticket_id)
                .where(Ticket.number == number)
                .order_by(Article.id)
            )
            return list(session.scalars(query))

    def events(self, number: int) -> list[Event]:
        with self.app.sessions() as session:
            query = (
                select(Event)
                .join(Ticket, Ticket.id == Event.ticket_id)
                .where(Ticket.number == number)
                .order_by(Event.id)
            )
            return list(session.scalars(query))

    def event_types(self, number: int) -> list[str]:
        return [event.type for event in self.events(number)]

    def inbound(self) -> list[InboundMessage]:
        with self.app.sessions() as session:
            return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))

    def outbox(self, kind: str | None = None) -> list[Outbox]:
        with self.app.sessions() as session:
            query = select(Outbox).order_by(Outbox.id)
            if kind is not None:
                query = query.where(Outbox.kind == kind)
            return with_bytes(self.app, list(session.scalars(query)))

    def sent_to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.smtp.received if address in m.recipients]


def make_world(
    tmp_path: Path, database_url: str, imap: EmbeddedImapServer, smtp: SmtpSink, **sections: Any
) -> World:
    """A World whose configuration is the test one plus STAFF, with `sections` on top."""
    sections.setdefault("staff", STAFF)
    clock = FrozenClock(START)
    config = make_config(tmp_path, database_url=database_url, imap=imap, smtp=smtp, **sections)
    return World(build_app(config, clock=clock), imap, smtp, clock)


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    database_url: str,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
) -> Iterator[World]:
    """mailbridge on SQLite, then on PostgreSQL, with staff and a trusted MTA configured;
    a test module's WORLD_SECTIONS (configuration sections) go on top."""
    made = make_world(
        tmp_path,
        database_url,
        imap_server,
        smtp_sink,
        **getattr(request.module, "WORLD_SECTIONS", {}),
    )
    yield made
    made.app.close()
