"""Mail whose From names no sender, through the real daemon (embedded IMAP, SMTP sink,
SQLite and PostgreSQL): the sender from Sender gets the acknowledgement; a mail naming no
sender anywhere tells staff first that nobody can be answered, until a proven staff
member's #requester names someone; nobody else's #requester changes anything."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbridge.app import App, build_app
from mailbridge.cli import tickets as reports
from mailbridge.clock import FrozenClock
from mailbridge.core.message import Address
from mailbridge.db.models import Article, Event, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.errors import MailbridgeError
from mailbridge.service.daemon import Daemon
from tests.support.builders import make_config

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ALICE = "alice@shop.example"
TEAM = "team@shop.example"
STAFF = {
    "addresses": [ALICE, "bob@shop.example"],
    "team_address": TEAM,
    "escalation_address": "lead@shop.example",
    "trusted_authserv_id": "mx.shop.example",
}
NOBODY_FIRST = (
    "Nobody to answer: this mail named no sender. Reply with #requester ADDRESS to set one."
)
ANSWER = "Hello Ann,\n\nyour parcel left our warehouse this morning."


@pytest.fixture
def app(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[App]:
    config = make_config(
        tmp_path, database_url=database_url, imap=imap_server, smtp=smtp_sink, staff=STAFF
    )
    application = build_app(config, clock=FrozenClock(START))
    yield application
    application.close()


def run_pass(app: App) -> None:
    report = asyncio.run(Daemon(app).run_once())
    assert report.ok, report


def raw_mail(*headers: str, body: str = "Hello,\r\nmy parcel 4711 never arrived.\r\n") -> bytes:
    """A mail with only the headers given after To, Subject, Date and Message-ID."""
    lines = [
        "To: support@shop.example",
        "Subject: Parcel 4711",
        "Date: Mon, 23 Nov 2026 08:00:00 +0000",
        "Message-ID: <p4711@customer.example>",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def ticket(app: App) -> Ticket:
    with app.sessions() as session:
        return session.scalars(select(Ticket)).one()


def events(app: App, event_type: str) -> list[Event]:
    with app.sessions() as session:
        return list(
            session.scalars(select(Event).where(Event.type == event_type).order_by(Event.id))
        )


def to(sink: SmtpSink, address: str) -> list[ReceivedMail]:
    return [m for m in sink.received if address in m.recipients]


def body(received: ReceivedMail) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def reply(
    notice: ReceivedMail,
    text: str,
    *,
    sender: str = f"Alice Bianchi <{ALICE}>",
    to_address: str | None = None,
    in_reply_to: str | None = None,
    message_id: str = "<r1@shop.example>",
    without_from: bool = False,
) -> bytes:
    """An answer to the notification (to its token Reply-To unless `to_address`)."""
    msg = EmailMessage()
    if without_from:
        msg["Sender"] = sender
    else:
        msg["From"] = sender
    msg["To"] = to_address or notice.message["Reply-To"]
    msg["Subject"] = "Re: " + notice.message["Subject"]
    msg["Date"] = format_datetime(START + timedelta(hours=1))
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = in_reply_to or notice.message["Message-ID"]
    msg.set_content(text + "\n")
    return msg.as_bytes()


def nobody_to_answer(app: App, imap: EmbeddedImapServer, sink: SmtpSink) -> ReceivedMail:
    """A mail naming no sender anywhere; returns the notification the team got."""
    imap.append(raw_mail())
    run_pass(app)
    notices = to(sink, TEAM) or [m for m in sink.wait_for(1) if TEAM in m.recipients]
    assert len(notices) == 1 and len(sink.received) == 1  # no acknowledgement: to nobody
    return notices[0]


def test_a_mail_without_from_is_acknowledged_at_its_sender_address(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(
        raw_mail(
            "Sender: Sue Sender <sue@customer.example>", "Return-Path: <bounces@customer.example>"
        )
    )
    run_pass(app)

    opened = ticket(app)
    assert (opened.requester_name, opened.requester_address) == (
        "Sue Sender",
        "sue@customer.example",
    )
    acks = [m for m in smtp_sink.wait_for(2) if "sue@customer.example" in m.recipients]
    assert len(acks) == 1 and "[#1000]" in acks[0].message["Subject"]
    with app.sessions() as session:
        article = session.scalars(select(Article)).one()
    assert article.from_address == "sue@customer.example"
    assert "missing From: sender taken from Sender" in article.defects
    assert not events(app, "ack_suppressed")


def test_a_mail_naming_no_sender_is_a_ticket_whose_notification_says_so_first(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = nobody_to_answer(app, imap_server, smtp_sink)

    assert body(notice).splitlines()[0] == NOBODY_FIRST
    assert "my parcel 4711 never arrived" in body(notice)
    opened = ticket(app)
    assert opened.requester_address == "" and opened.first_response_due_at is not None
    suppressed = events(app, "ack_suppressed")
    assert [e.data["check"] for e in suppressed] == ["unusable_address"]
    assert "named no sender in From, Sender, Reply-To or Return-Path" in str(
        suppressed[0].data["reason"]
    )
    shown = io.StringIO()
    reports.show_ticket(app, 1000, True, shown)
    why = json.loads(shown.getvalue())["no_requester"]
    assert why.startswith(
        "no requester: the mail named no sender in From, Sender, Reply-To "
        "or Return-Path; a staff member can set one with #requester ADDRESS"
    )
    assert "mailbridge tickets requester 1000 ADDRESS" in why
    text = io.StringIO()
    reports.show_ticket(app, 1000, False, text)
    assert f"  {why}\n" in text.getvalue()


def test_only_a_proven_staff_members_requester_sets_who_is_answered(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = nobody_to_answer(app, imap_server, smtp_sink)
    original = "<p4711@customer.example>"
    # A stranger in the thread, a forged staff From without proof, and a staff address in
    # Sender alone (no From) on the token address: customer mail, each changing nothing.
    imap_server.append(
        reply(
            notice,
            "#requester eve@evil.example\n\nSend it to me.",
            sender="Eve <eve@evil.example>",
            to_address="support@shop.example",
            in_reply_to=original,
            message_id="<e1@evil.example>",
        )
    )
    imap_server.append(
        reply(
            notice,
            "#requester eve@evil.example\n\nHello.",
            to_address="support@shop.example",
            in_reply_to=original,
            message_id="<e2@evil.example>",
        )
    )
    imap_server.append(
        reply(
            notice,
            "#requester eve@evil.example\n\nHello.",
            sender="Bob <bob@shop.example>",
            in_reply_to=original,
            message_id="<e3@evil.example>",
            without_from=True,
        )
    )
    run_pass(app)

    assert ticket(app).requester_address == ""
    assert not events(app, "requester_changed")
    assert not to(smtp_sink, "eve@evil.example")
    unverified = [e.data["reason"] for e in events(app, "unverified_sender")]
    assert unverified == [
        "eve@evil.example has not written on this ticket before",
        f"{ALICE} has not written on this ticket before",
        "bob@shop.example has not written on this ticket before",
    ]
    assert [e.data["address"] for e in events(app, "staff_unproven")] == [ALICE]

    imap_server.append(
        reply(
            notice,
            "#requester Ann Example <Ann@Customer.example>\n\n" + ANSWER,
            message_id="<r2@shop.example>",
        )
    )
    run_pass(app)

    answered = ticket(app)
    assert (answered.requester_name, answered.requester_address) == (
        "Ann Example",
        "ann@customer.example",
    )
    assert answered.first_responded_at == START
    [changed] = events(app, "requester_changed")
    assert (changed.data["old"], changed.data["new"], changed.data["by"]) == (
        "",
        "ann@customer.example",
        ALICE,
    )
    assert events(app, "staff_reply")[-1].data["changes"] == {
        "requester": ["", "ann@customer.example"]
    }
    answers = [m for m in smtp_sink.wait_for(5) if "ann@customer.example" in m.recipients]
    assert len(answers) == 1
    assert ANSWER in body(answers[0])
    assert answers[0].message["From"].addresses[0].addr_spec == "support@shop.example"
    assert "<p4711@customer.example>" in answers[0].message["References"]


def test_staff_text_for_a_ticket_without_requester_waits_for_one(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = nobody_to_answer(app, imap_server, smtp_sink)
    imap_server.append(reply(notice, ANSWER))
    imap_server.append(
        reply(
            notice, "#requester support@shop.example\n\n" + ANSWER, message_id="<r2@shop.example>"
        )
    )
    imap_server.append(
        reply(
            notice,
            "#requester Ann, ann@customer.example\n\n" + ANSWER,
            message_id="<r3@shop.example>",
        )
    )
    run_pass(app)

    complaints = [m for m in smtp_sink.wait_for(4) if ALICE in m.recipients]
    assert len(complaints) == 3 and len(smtp_sink.received) == 4
    assert "put #requester ADDRESS on the first line" in body(complaints[0]).replace("\n", " ")
    assert "support@shop.example is one of our own addresses" in body(complaints[1])
    assert "#requester Ann, ann@customer.example: expected one address" in body(complaints[2])
    unchanged = ticket(app)
    assert unchanged.requester_address == "" and unchanged.first_responded_at is None
    assert len(events(app, "staff_commands_refused")) == 3


def test_the_command_line_sets_a_requester_too(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    nobody_to_answer(app, imap_server, smtp_sink)
    out = io.StringIO()
    reports.set_ticket_requester(app, 1000, Address("Ann", "ann@customer.example"), out)
    reports.set_ticket_requester(app, 1000, Address("Ann", "ann@customer.example"), out)
    assert out.getvalue() == (
        "ticket #1000: requester Ann <ann@customer.example> (was: none)\n"
        "ticket #1000: requester Ann <ann@customer.example> (unchanged)\n"
    )
    with pytest.raises(MailbridgeError, match="one of our own addresses"):
        reports.set_ticket_requester(app, 1000, Address("", "support+x@shop.example"), out)
    [changed] = events(app, "requester_changed")
    assert changed.data["by"] == "command line" and changed.data["new"] == "ann@customer.example"
    shown = io.StringIO()
    reports.show_ticket(app, 1000, True, shown)
    assert json.loads(shown.getvalue())["no_requester"] is None


def test_a_domainless_mailer_daemon_bounce_is_never_answered(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    """Its Reply-To and Return-Path name a third party: neither is taken as its sender."""
    imap_server.append(
        raw_mail(
            "From: Mail Delivery Subsystem <MAILER-DAEMON>",
            "Reply-To: <victim@customer.example>",
            "Return-Path: <victim@customer.example>",
            body="This is the mail system at host mx.customer.example.\r\n\r\nI'm sorry to have "
            "to inform you that your message could not be delivered to one or more "
            "recipients.\r\n",
        )
    )
    imap_server.append(raw_mail("From: Ben <ben@customer.example>"))  # in the same batch
    run_pass(app)

    smtp_sink.wait_for(2)  # Ben's acknowledgement and the team's notification
    assert not to(smtp_sink, "victim@customer.example")
    with app.sessions() as session:
        tickets = list(session.scalars(select(Ticket)))
    assert [t.requester_address for t in tickets] == ["ben@customer.example"]
