"""Who gets an acknowledgement (pymap + aiosmtpd, SQLite and PostgreSQL): at most N per
sender address per hour, the rest recorded but not sent; none to noreply-style senders or to
our own addresses."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Event, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.daemon import Daemon, PassReport
from tests.support.builders import mail
from tests.support.served_app import app, clock

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"tickets": {"ack_limit_per_hour": 2}}


def run_pass(app: App) -> PassReport:
    return asyncio.run(Daemon(app).run_once())


def suppressed(app: App) -> dict[int, str]:
    """Ticket number -> why its acknowledgement was not sent."""
    with app.sessions() as session:
        rows = session.execute(
            select(Ticket.number, Event.data)
            .join(Event, Event.ticket_id == Ticket.id)
            .where(Event.type == "ack_suppressed")
        )
        return {number: data["reason"] for number, data in rows}


def test_at_most_n_acknowledgements_per_sender_per_hour(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    for n in range(3):
        imap_server.append(mail("Ada <ada@corp.example>", f"Question {n}"))
        clock.advance(timedelta(minutes=10))
        run_pass(app)
    imap_server.append(mail("Bob <bob@corp.example>", "Another sender"))
    run_pass(app)

    assert [m.recipients for m in smtp_sink.wait_for(3)] == [
        ("ada@corp.example",),
        ("ada@corp.example",),
        ("bob@corp.example",),
    ]
    assert list(suppressed(app)) == [1002]
    assert suppressed(app)[1002].startswith("rate limit: 2 acknowledgements")
    with app.sessions() as session:
        assert session.scalars(select(Ticket.number)).all() == [1000, 1001, 1002, 1003]

    # Acknowledged at 9:10 and 9:20: at 10:09 the hour is still full, at 10:11 it is not.
    clock.advance(timedelta(minutes=39))
    imap_server.append(mail("Ada <ada@corp.example>", "Question 2b"))
    run_pass(app)
    assert len(smtp_sink.received) == 3 and 1004 in suppressed(app)
    clock.advance(timedelta(minutes=2))
    imap_server.append(mail("Ada <ada@corp.example>", "Question 3"))
    run_pass(app)
    assert smtp_sink.wait_for(4)[3].recipients == ("ada@corp.example",)
    assert len(smtp_sink.received) == 4


@pytest.mark.parametrize(
    "sender",
    [
        "No Reply <noreply@shop-partner.example>",
        "Mailer <mailer-daemon@corp.example>",
        "Shop Support <support@shop.example>",
    ],
)
def test_no_acknowledgement_to_automated_or_own_senders(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sender: str
) -> None:
    imap_server.append(mail(sender, "Your order has shipped"))
    report = run_pass(app)

    assert report.processed.acknowledged == 0
    with app.sessions() as session:
        assert session.scalars(select(Outbox)).all() == []
    assert smtp_sink.received == []


def test_an_acknowledgement_refused_for_good_is_recorded_on_its_ticket(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse_recipient("ada@corp.example", 550, "5.1.1 no such user here")
    imap_server.append(mail("Ada <ada@corp.example>", "Question"))
    run_pass(app)

    with app.sessions() as session:
        (ack,) = session.scalars(select(Outbox)).all()
        (event,) = session.scalars(select(Event).where(Event.type == "mail_failed")).all()
    assert ack.state == "failed" and event.ticket_id == ack.ticket_id
    assert event.data == {
        "outbox_id": ack.id,
        "kind": "ack",
        "to": ["ada@corp.example"],
        "reason": ack.last_error,
    }
    assert "550 5.1.1 no such user here" in event.data["reason"]
