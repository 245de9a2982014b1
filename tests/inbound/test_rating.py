"""Satisfaction ratings by mail, end to end through the daemon on pymap and the aiosmtpd sink,
on SQLite and PostgreSQL: the links of the mail that finishes a ticket, a reply to either,
a plain reply in the customer's words, and tokens that prove nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Event, TicketTag
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from tests.support.builders import mail
from tests.support.served_app import app, body, clock, run_pass, to
from tests.support.staff_relay import (
    CUSTOMER,
    NEW_TEXT,
    events,
    open_ticket,
    staff_reply,
    ticket,
)
from tests.support.staff_world import SIGNED_STAFF

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

_MAILTO = re.compile(r"mailto:\S+")


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"staff": SIGNED_STAFF}


def links(received: ReceivedMail) -> dict[str, tuple[str, str]]:
    """The rating links of a mail we sent: verdict -> (address, subject)."""
    found: dict[str, tuple[str, str]] = {}
    for url in _MAILTO.findall(body(received)):
        parts = urlsplit(url)
        address = unquote(parts.path)
        subject = unquote(parts.query.removeprefix("subject="))
        verdict = address.split("-")[1]
        found[verdict] = (address, subject)
    return found


def closed_with_links(
    app: App, imap: EmbeddedImapServer, sink: SmtpSink
) -> tuple[ReceivedMail, dict[str, tuple[str, str]]]:
    """A customer writes, staff answer `#close`; the `closed` mail and its links."""
    notice = open_ticket(app, imap, sink)
    imap.append(staff_reply(notice, "#close"))
    run_pass(app)
    closed = to(sink.wait_for(3), CUSTOMER)[1]
    return closed, links(closed)


def click(imap: EmbeddedImapServer, app: App, link: tuple[str, str], sender: str) -> None:
    """What a mail client sends for a `mailto:` link: the address, the subject, no
    references."""
    address, subject = link
    imap.append(mail(sender, subject, "\n", to=address))
    run_pass(app)


def ratings(app: App) -> list[dict[str, Any]]:
    return [e.data for e in events(app) if e.type == "rated"]


def test_close_sends_the_closed_mail_with_two_links_that_work(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    closed, found = closed_with_links(app, imap_server, smtp_sink)
    assert "We have closed ticket [#1000]" in body(closed)
    assert set(found) == {"good", "bad"}
    good_address, good_subject = found["good"]
    assert good_address.startswith("support+r1000-good-")
    assert good_address.endswith("@shop.example")
    assert good_subject == "[#1000] yes, solved"
    assert found["bad"][1] == "[#1000] no, not solved"
    assert "support+t" not in closed.raw.decode()  # no staff token reaches a customer

    # The token is the proof, like a click: a colleague who was never on the ticket rates it.
    click(imap_server, app, found["good"], "Boss <boss@customer.example>")
    assert ratings(app) == [
        {
            "verdict": "good",
            "how": "token",
            "by": "boss@customer.example",
            "via": "mail",
            "article_id": ratings(app)[0]["article_id"],
            "status": "closed",
        }
    ]
    assert ticket(app).status == "closed"
    assert len(smtp_sink.received) == 3  # no acknowledgement, no staff notification
    metrics = Metrics(app, Health(app.clock)).render().decode()
    assert 'mailbridge_ratings_total{verdict="good"} 1.0' in metrics
    assert 'mailbridge_ratings_total{verdict="bad"} 0.0' in metrics


def test_the_not_solved_link_reopens_at_raised_priority_tagged_unhappy(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    _, found = closed_with_links(app, imap_server, smtp_sink)
    assert ticket(app).priority == "normal"

    click(imap_server, app, found["bad"], f"Ada <{CUSTOMER}>")

    reopened = ticket(app)
    assert reopened.status == "open" and reopened.resolved_at is None
    assert reopened.priority == "high"
    assert reopened.next_escalation_at is not None
    with app.sessions() as session:
        tags = session.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == reopened.id))
        assert list(tags) == ["unhappy"]
    assert [(r["verdict"], r["how"]) for r in ratings(app)] == [("bad", "token")]
    types = [e.type for e in events(app)]
    assert types.index("rated") < types.index("followup") < types.index("priority_raised")
    # Staff hear of it as of any follow-up; the customer gets no acknowledgement.
    notices = to(smtp_sink.wait_for(4), "team@shop.example")
    assert len(notices) == 2 and "Follow-up" in notices[1].message["Subject"]
    assert len(to(smtp_sink, CUSTOMER)) == 2


def test_a_plain_risolto_grazie_to_the_closed_mail_rates_it_good(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    closed, _ = closed_with_links(app, imap_server, smtp_sink)
    quoted = "\n".join(f"> {line}" for line in body(closed).splitlines())
    imap_server.append(
        mail(
            f"Ada <{CUSTOMER}>",
            "Re: " + closed.message["Subject"],
            f"Risolto, grazie!\n\nIl giorno lun 23 nov 2026, Shop <support@shop.example> ha "
            f"scritto:\n{quoted}\n",
            in_reply_to=closed.message["Message-ID"],
        )
    )
    run_pass(app)

    assert [(r["verdict"], r["how"]) for r in ratings(app)] == [("good", "text")]
    assert ticket(app).status == "closed"
    assert len(smtp_sink.received) == 3


def test_a_plain_not_solved_reply_reopens_and_an_open_tickets_words_rate_nothing(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    closed, _ = closed_with_links(app, imap_server, smtp_sink)
    reply = mail(
        f"Ada <{CUSTOMER}>",
        "Re: " + closed.message["Subject"],
        "No, non è risolto.\n",
        in_reply_to=closed.message["Message-ID"],
    )
    imap_server.append(reply)
    run_pass(app)
    assert [(r["verdict"], r["how"]) for r in ratings(app)] == [("bad", "text")]
    assert (ticket(app).status, ticket(app).priority) == ("open", "high")

    # Now open: the same words are a chaser, not a second rating.
    imap_server.append(reply.replace(b"Message-ID: <", b"Message-ID: <again."))
    run_pass(app)
    assert len(ratings(app)) == 1


@pytest.mark.parametrize(
    ("command", "rated"), [("#resolve\n", True), ("#close\n", True), ("", False)]
)
def test_an_answer_that_finishes_the_ticket_carries_the_links_and_others_do_not(
    command: str, rated: bool, app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink)
    imap_server.append(staff_reply(notice, command + NEW_TEXT))
    run_pass(app)

    answer = to(smtp_sink.wait_for(3), CUSTOMER)[1]
    assert NEW_TEXT in body(answer)
    assert set(links(answer)) == ({"good", "bad"} if rated else set())


@pytest.mark.parametrize("spoil", ["forged", "expired"])
def test_a_forged_or_expired_token_rates_nothing_and_is_an_ordinary_follow_up(
    spoil: str,
    app: App,
    clock: FrozenClock,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
) -> None:
    _, found = closed_with_links(app, imap_server, smtp_sink)
    address, subject = found["good"]
    if spoil == "forged":
        local, _, domain = address.partition("@")
        address = local[:-4] + "aaaa" + "@" + domain if not local.endswith("aaaa") else address
        assert address != found["good"][0]
    else:
        clock.advance(timedelta(days=9))  # rating_lifetime 7 days, to the end of that day

    click(imap_server, app, (address, subject), f"Ada <{CUSTOMER}>")

    assert ratings(app) == []
    # The requester's mail with the ticket's tag: a follow-up, which reopens it.
    assert ticket(app).status == "open"
    assert "followup" in [e.type for e in events(app)]


def test_a_forged_token_from_a_stranger_reaches_no_ticket(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    _, found = closed_with_links(app, imap_server, smtp_sink)
    address, subject = found["bad"]
    forged = address.replace("r1000-bad", "r1000-good")
    click(imap_server, app, (forged, subject), "Mallory <mallory@evil.example>")

    assert ratings(app) == []
    assert ticket(app).status == "closed" and ticket(app).priority == "normal"
    with app.sessions() as session:
        rated = session.scalars(select(Event).where(Event.type == "rated")).all()
        assert rated == []
    assert ticket(app, 1001).requester_address == "mallory@evil.example"  # a ticket of its own
