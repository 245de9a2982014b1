"""Spam on the processing path, through the daemon (pymap + aiosmtpd, SQLite and
PostgreSQL): spam gets no answer and pages nobody, the allowlist beats the blocklist, rules
on headers and on the spam judgement spam or ignore a mail, an ignored mail is listed and
released into a ticket, and mail onto a spam ticket stays there."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.cli.ignored import list_ignored, release_ignored
from mailbridge.clock import FrozenClock
from mailbridge.core.states import InboundState, TicketStatus
from mailbridge.db.models import (
    Event,
    InboundMessage,
    Outbox,
    SenderRule,
    Ticket,
    TicketParticipant,
)
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.errors import MailbridgeError
from tests.support.builders import mail
from tests.support.served_app import app, clock, run_pass
from tests.support.sla_world import START

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

TEAM = "team@shop.example"
BULK_RULE = {
    "name": "bulk mailers",
    "when": {"header": {"name": "X-Mailer", "matches": r"blast ?mailer"}},
    "then": {"ignore": True},
}


@pytest.fixture
def app_sections(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The staff team told, full acknowledgements, and [spam] lists; a test adds sections
    with `with_sections`."""
    extra: dict[str, Any] = getattr(request, "param", {})
    return {
        "staff": {"team_address": TEAM, "escalation_address": "lead@shop.example"},
        "tickets": {"ack_unauthenticated": "full"},
        "spam": {"block": ["*@spam.example"], "allow": ["friend@spam.example"]},
        **extra,
    }


def with_sections(sections: dict[str, Any]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("app_sections", [sections], indirect=True, ids=["sections"])


def tickets(app: App) -> dict[str, Ticket]:
    """Every ticket, by its requester."""
    with app.sessions() as session:
        return {t.requester_address: t for t in session.scalars(select(Ticket))}


def outbox(app: App) -> list[tuple[str, tuple[str, ...]]]:
    """(kind, recipients) of every mail queued, in order."""
    with app.sessions() as session:
        rows = session.scalars(select(Outbox).order_by(Outbox.id))
        return [(r.kind, tuple(sorted(x["address"] for x in r.recipients))) for r in rows]


def events(app: App, ticket: Ticket, *types: str) -> list[tuple[str, dict[str, Any]]]:
    with app.sessions() as session:
        query = select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id)
        if types:
            query = query.where(Event.type.in_(types))
        return [(e.type, e.data) for e in session.scalars(query)]


def inbound(app: App) -> list[InboundMessage]:
    with app.sessions() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def add_sender_rule(app: App, pattern: str, kind: str) -> None:
    with app.transaction() as session:
        session.add(SenderRule(pattern=pattern, kind=kind, created_at=START, created_by="test"))


def test_spam_is_never_acknowledged_notified_or_given_deadlines(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    imap_server.append(
        mail(
            "Cheap Pills <pills@spam.example>",
            "Best prices",
            "Buy now",
            headers={"Cc": "victim@innocent.example"},
        )
    )
    imap_server.append(mail("Ada <ada@customer.example>", "Printer on fire"))
    report = run_pass(app)

    assert (report.processed.created, report.processed.acknowledged) == (1, 1)
    spam, real = tickets(app)["pills@spam.example"], tickets(app)["ada@customer.example"]
    assert spam.status == TicketStatus.SPAM and spam.spam_at == START
    assert (spam.first_response_due_at, spam.resolution_due_at, spam.next_escalation_at) == (
        None,
        None,
        None,
    )
    assert real.status == TicketStatus.NEW and real.first_response_due_at is not None
    # Only the real customer is answered and only their ticket is notified.
    assert outbox(app) == [("ack", ("ada@customer.example",)), ("notification", (TEAM,))]
    assert sorted(m.recipients for m in smtp_sink.wait_for(2)) == [
        ("ada@customer.example",),
        (TEAM,),
    ]
    assert events(app, spam, "spam") == [
        ("spam", {"reason": "blocklist: *@spam.example", "rules": [], "by": "processing"})
    ]
    assert events(app, spam, "ack_suppressed", "rule_matched", "participant_added") == []
    with app.sessions() as session:
        people = session.scalars(
            select(TicketParticipant).where(TicketParticipant.ticket_id == spam.id)
        ).all()
    assert people == []  # the copied address joined nothing
    assert [m.reason for m in inbound(app)] == ["blocklist: *@spam.example", None]
    run_pass(app)
    assert len(smtp_sink.received) == 2


def test_allow_beats_block_from_the_configuration_and_the_table(
    app: App, imap_server: EmbeddedImapServer
) -> None:
    add_sender_rule(app, "bob@partner.example", "block")
    add_sender_rule(app, "partner.example", "allow")  # the domain allowed, one address blocked
    add_sender_rule(app, "eve@partner.example", "block")
    add_sender_rule(app, "*@*.mailer.example", "block")
    for sender in (
        "friend@spam.example",  # config allow beats config block
        "other@spam.example",  # config block
        "bob@partner.example",  # table allow (domain) beats table block (address)
        "x@eu.mailer.example",  # table glob
        "ok@mailer.example",  # the glob names subdomains only
    ):
        imap_server.append(mail(f"S <{sender}>", f"From {sender}"))
    run_pass(app)

    statuses = {address: t.status for address, t in tickets(app).items()}
    assert statuses == {
        "friend@spam.example": TicketStatus.NEW,
        "other@spam.example": TicketStatus.SPAM,
        "bob@partner.example": TicketStatus.NEW,
        "x@eu.mailer.example": TicketStatus.SPAM,
        "ok@mailer.example": TicketStatus.NEW,
    }
    acknowledged = {to for kind, (to, *_) in outbox(app) if kind == "ack"}
    assert acknowledged == {"friend@spam.example", "bob@partner.example", "ok@mailer.example"}


@with_sections({"rule": [BULK_RULE]})
def test_a_header_rule_ignores_a_mail_which_is_listed_and_can_be_released(
    app: App, imap_server: EmbeddedImapServer, clock: FrozenClock
) -> None:
    imap_server.append(
        mail("News <news@shop-deals.example>", "Deals", headers={"X-Mailer": "Blast Mailer 3.1"})
    )
    imap_server.append(mail("Ada <ada@customer.example>", "Hello", headers={"X-Mailer": "Mutt"}))
    report = run_pass(app)

    assert (report.processed.ignored, report.processed.created) == (1, 1)
    assert list(tickets(app)) == ["ada@customer.example"]
    listing = io.StringIO()
    list_ignored(app, True, listing)
    (listed,) = json.loads(listing.getvalue())
    assert (listed["subject"], listed["reason"]) == ("Deals", 'rule "bulk mailers"')
    text = io.StringIO()
    list_ignored(app, False, text)
    assert 'rule "bulk mailers"' in text.getvalue() and "WHY" in text.getvalue()

    with pytest.raises(MailbridgeError, match="it is processed, not ignored"):
        release_ignored(app, [listed["id"], inbound(app)[1].id], io.StringIO())
    clock.advance(timedelta(minutes=5))
    assert release_ignored(app, [listed["id"]], io.StringIO()) == 0
    released = run_pass(app)

    assert released.processed.created == 1 and released.processed.acknowledged == 1
    ticket = tickets(app)["news@shop-deals.example"]
    assert ticket.status == TicketStatus.NEW and ticket.first_response_due_at is not None
    assert events(app, ticket, "released") == [
        ("released", {"inbound_message_id": listed["id"], "was": 'rule "bulk mailers"'})
    ]
    message = inbound(app)[0]
    assert message.state == InboundState.PROCESSED and message.released_at == START + timedelta(
        minutes=5
    )
    assert message.reason == 'released from ignored (was: rule "bulk mailers")'
    assert ("notification", (TEAM,)) in outbox(app)[-2:]
    empty = io.StringIO()
    list_ignored(app, True, empty)
    assert json.loads(empty.getvalue()) == []


@with_sections(
    {
        "rule": [
            {"name": "suspects", "when": {"spam": True}, "then": {"ignore": True}},
            {"name": "friends", "when": {"spam": False}, "then": {"tags": ["checked"]}},
        ]
    }
)
def test_when_spam_sees_the_judgement(app: App, imap_server: EmbeddedImapServer) -> None:
    imap_server.append(mail("P <pills@spam.example>", "Pills"))
    imap_server.append(mail("F <friend@spam.example>", "Lunch?"))
    run_pass(app)

    assert list(tickets(app)) == ["friend@spam.example"]
    messages = inbound(app)
    assert (messages[0].state, messages[0].reason) == (InboundState.IGNORED, 'rule "suspects"')
    friend = tickets(app)["friend@spam.example"]
    assert [data["rule"] for _, data in events(app, friend, "rule_matched")] == ["friends"]


@with_sections(
    {
        "spam": {"block": ["*@spam.example"], "action": "ignore"},
        "rule": [
            {
                "name": "never spam the lawyers",
                "when": {"subject": {"words": ["subpoena"]}},
                "then": {"spam": False},
            }
        ],
    }
)
def test_spam_action_ignore_and_a_rule_saying_not_spam(
    app: App, imap_server: EmbeddedImapServer
) -> None:
    imap_server.append(mail("P <pills@spam.example>", "Pills"))
    imap_server.append(mail("L <law@spam.example>", "Subpoena attached"))
    run_pass(app)

    assert [(m.state, m.reason) for m in inbound(app)] == [
        (InboundState.IGNORED, "blocklist: *@spam.example"),
        (InboundState.PROCESSED, 'rule "never spam the lawyers"'),
    ]
    assert tickets(app)["law@spam.example"].status == TicketStatus.NEW
    assert ("ack", ("law@spam.example",)) in outbox(app)


HOSTILE = "a" * 2_000_000


@with_sections(
    {
        "rule": [
            {
                "name": "backtracking",
                "when": {"header": [{"name": "X-Junk", "matches": "a+b"}]},
                "then": {"spam": True},
            },
            {
                "name": "far out",
                "when": {"header": {"name": "X-Junk", "matches": "marker"}},
                "then": {"ignore": True},
            },
        ],
    }
)
def test_a_hostile_header_value_is_read_bounded(app: App, imap_server: EmbeddedImapServer) -> None:
    # Two megabytes of one header, a pattern that backtracks over every start position,
    # and a marker past what rules read: quick, and the marker is not seen.
    folded = "\n ".join(HOSTILE[i : i + 900] for i in range(0, len(HOSTILE), 900))
    header = f"X-Junk: {folded} marker b\n".encode()
    imap_server.append(header + mail("H <h@hostile.example>", "Junk"))
    started = time.process_time()
    run_pass(app)
    elapsed = time.process_time() - started

    assert [t.status for t in tickets(app).values()] == [TicketStatus.NEW]
    assert elapsed < 20  # parsing two megabytes costs seconds; matching them whole, far more


def test_mail_onto_a_spam_ticket_stays_there_and_a_followup_is_not_judged(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    imap_server.append(mail("P <pills@spam.example>", "Pills", message_id="<p1@spam.example>"))
    imap_server.append(mail("Bob <bob@later.example>", "Order", message_id="<b1@later.example>"))
    run_pass(app)
    smtp_sink.wait_for(2)  # Bob's acknowledgement and notification
    add_sender_rule(app, "later.example", "block")  # blocked after his ticket was opened
    clock.advance(timedelta(hours=1))
    imap_server.append(mail("P <pills@spam.example>", "Re: Pills", in_reply_to="<p1@spam.example>"))
    imap_server.append(
        mail("Bob <bob@later.example>", "Re: Order", in_reply_to="<b1@later.example>")
    )
    run_pass(app)

    spam, bob = tickets(app)["pills@spam.example"], tickets(app)["bob@later.example"]
    assert len(tickets(app)) == 2
    assert spam.status == TicketStatus.SPAM and spam.spam_at == START
    assert spam.first_response_due_at is None
    assert [t for t, _ in events(app, spam)] == ["created", "spam", "spam_followup"]
    assert bob.status == TicketStatus.NEW  # his conversation goes on
    assert outbox(app) == [
        ("ack", ("bob@later.example",)),
        ("notification", (TEAM,)),
        ("notification", (TEAM,)),  # Bob's follow-up, nothing for the spam
    ]


OUR_HOP = (
    b"Received: from mail.sender.example (mail.sender.example [192.0.2.7])\r\n"
    b"\tby mx.shop.example (Postfix) with ESMTPS id 4Q1x2y3z;\r\n"
    b"\tMon, 23 Nov 2026 09:00:01 +0100 (CET)\r\n"
)
SPAMASSASSIN = (
    b"X-Spam-Flag: YES\r\n"
    b"X-Spam-Status: Yes, score=9.3 required=5.0 tests=BAYES_99,HTML_MESSAGE,\r\n"
    b"\tURIBL_BLACK autolearn=no autolearn_force=no version=4.0.0\r\n"
)


@with_sections({"spam": {"headers": True, "trusted_hosts": ["mx.shop.example"]}})
def test_our_filters_verdict_makes_spam_and_a_planted_one_does_not(
    app: App, imap_server: EmbeddedImapServer
) -> None:
    # SpamAssassin (via amavis or spamc) wrote its verdict above our MTA's Received line.
    imap_server.append(SPAMASSASSIN + OUR_HOP + mail("Pills <pills@pharma.example>", "Deals"))
    # The same verdict written by the sender sits below every Received line we added.
    planted = OUR_HOP + SPAMASSASSIN + mail("Ada <ada@customer.example>", "Printer on fire")
    imap_server.append(planted)
    run_pass(app)

    statuses = {address: t.status for address, t in tickets(app).items()}
    assert statuses == {
        "pills@pharma.example": TicketStatus.SPAM,
        "ada@customer.example": TicketStatus.NEW,
    }
    assert [kind for kind, to in outbox(app) if kind == "ack"] == ["ack"]
    assert [m.reason for m in inbound(app)][0].startswith("spamassassin")
