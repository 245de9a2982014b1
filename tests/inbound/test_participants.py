"""Participants through the real daemon (pymap, the aiosmtpd sink, SQLite and PostgreSQL):
a customer copies a colleague, staff answer to both (To the requester, Cc the colleague),
the colleague's reply-all joins the ticket without an acknowledgement, and staff manage
the list with #cc. Hostile senders: a forged staff #cc, 5,000 Cc's, a name with CR/LF."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.cli import tickets as reports
from mailbridge.cli.ticket_participants import cc_ticket
from mailbridge.core.message import Address
from mailbridge.db.models import Article, Event, Ticket, TicketParticipant
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.errors import MailbridgeError
from tests.support.served_app import app, body, clock, run_pass, to
from tests.support.sla_world import START
from tests.support.staff_world import ADA, ALICE, STAFF

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

MARCO = "marco@customer.example"
TEAM = "team@shop.example"
ANSWER = "Hello Ada,\n\na new printer is on its way."


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"staff": STAFF}


def customer(
    sender: str,
    text: str,
    *,
    to_: str = "support@shop.example",
    cc: str = "",
    message_id: str,
    replying_to: str | None = None,
    subject: str = "Printer on fire",
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to_, subject
    msg["Date"] = format_datetime(START)
    msg["Message-ID"] = message_id
    if replying_to:
        msg["In-Reply-To"] = msg["References"] = replying_to
    msg.set_content(text + "\n")
    # Cc written as it comes, which the email package would refuse to write for a test.
    return (f"Cc: {cc}\n".encode() if cc else b"") + msg.as_bytes()


def staff_reply(notice: ReceivedMail, text: str, *, to_address: str | None = None) -> bytes:
    """Alice answers the notification from her mail client, quoting it."""
    msg = EmailMessage()
    msg["From"] = f"Alice Bianchi <{ALICE}>"
    msg["To"] = to_address or notice.message["Reply-To"]
    msg["Subject"] = "Re: " + notice.message["Subject"]
    msg["Date"] = format_datetime(START + timedelta(hours=1))
    msg["Message-ID"] = f"<r{abs(hash(text))}@shop.example>"
    msg["In-Reply-To"] = msg["References"] = notice.message["Message-ID"]
    quoted = "\n".join("> " + line for line in body(notice).splitlines())
    said = "On Mon, 23 Nov 2026 at 10:00, Shop Support <support@shop.example> wrote:"
    msg.set_content(f"{text}\n\n{said}\n{quoted}\n")
    return msg.as_bytes()


def open_ticket(app: App, imap: EmbeddedImapServer, sink: SmtpSink, cc: str) -> ReceivedMail:
    """Ada writes, copying `cc`; returns the team's notification."""
    imap.append(
        customer(
            f"Ada Lovelace <{ADA}>",
            "My printer is on fire.",
            cc=cc,
            message_id="<p1@customer.example>",
        )
    )
    run_pass(app)
    sink.wait_for(2)
    notices = to(sink, TEAM)
    assert len(notices) == 1
    return notices[0]


def active(app: App) -> list[str]:
    with app.sessions() as session:
        query = select(TicketParticipant.address).where(TicketParticipant.removed_at.is_(None))
        return sorted(session.scalars(query))


def events(app: App, kind: str) -> list[Event]:
    with app.sessions() as session:
        return list(session.scalars(select(Event).where(Event.type == kind).order_by(Event.id)))


def acks(sink: SmtpSink) -> list[ReceivedMail]:
    return [m for m in sink.received if m.message["Auto-Submitted"] == "auto-replied"]


# --- the conversation ------------------------------------------------------------------------


def test_a_copied_colleague_gets_the_answer_in_cc_and_joins_by_replying_all(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(
        app,
        imap_server,
        smtp_sink,
        cc=f"Marco Rossi <{MARCO}>, Alice <{ALICE}>, support+x@shop.example",
    )
    assert [list(m.recipients) for m in acks(smtp_sink)] == [[ADA]], "the colleague is not acked"
    assert "Copied:    Marco Rossi <marco@customer.example>" in body(notice)
    assert active(app) == [MARCO], "staff and our own addresses never join"
    joined = events(app, "participants_changed")[0].data
    assert joined["by"] == ADA and joined["via"] == "mail" and joined["added"] == [MARCO]
    assert joined["skipped"] == [{"address": ALICE, "reason": "a staff address"}]

    imap_server.append(staff_reply(notice, ANSWER))
    run_pass(app)
    answer = to(smtp_sink.wait_for(3), MARCO)
    assert len(answer) == 1 and sorted(answer[0].recipients) == [ADA, MARCO]
    message = answer[0].message
    assert [a.addr_spec for a in message["To"].addresses] == [ADA]
    assert [a.addr_spec for a in message["Cc"].addresses] == [MARCO]
    assert message["Cc"].addresses[0].display_name == "Marco Rossi"
    assert ANSWER in body(answer[0]) and "wrote:" not in body(answer[0])
    assert ALICE not in answer[0].raw.decode()
    with app.sessions() as session:
        reply = session.scalars(select(Article).where(Article.author_kind == "staff")).one()
    assert (reply.to, reply.cc) == ([ADA], [MARCO])

    # Marco answers all: To support, Cc Ada, in reply to our answer.
    imap_server.append(
        customer(
            f"Marco Rossi <{MARCO}>",
            "Thanks, I will be at home to receive it.",
            cc=ADA,
            message_id="<m2@customer.example>",
            replying_to=message["Message-ID"],
            subject="Re: " + message["Subject"],
        )
    )
    report = run_pass(app)
    assert report.processed.created == 0 and report.processed.processed == 1
    assert len(acks(smtp_sink)) == 1, "no second acknowledgement, to anyone"
    with app.sessions() as session:
        marcos = session.scalars(select(Article).where(Article.from_address == MARCO)).one()
        assert marcos.author_kind == "customer", "a participant is no unverified stranger"
        assert session.scalars(select(Ticket)).one().status == "open"
    assert active(app) == [MARCO], "the requester in Cc is not a participant"


def test_a_colleague_replying_all_to_the_first_mail_joins_without_an_acknowledgement(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    open_ticket(app, imap_server, smtp_sink, cc=MARCO)
    imap_server.append(
        customer(
            MARCO,
            "Same here: the office printer too.",
            cc=ADA,
            message_id="<m1@customer.example>",
            replying_to="<p1@customer.example>",
            subject="Re: Printer on fire",
        )
    )
    report = run_pass(app)
    assert report.processed.created == 0
    assert [list(m.recipients) for m in acks(smtp_sink)] == [[ADA]]
    assert events(app, "unverified_sender") == []
    assert "Follow-up" in to(smtp_sink.wait_for(3), TEAM)[-1].message["Subject"]


def test_a_strangers_mail_by_reference_adds_nobody(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    open_ticket(app, imap_server, smtp_sink, cc="")
    imap_server.append(
        customer(
            "mallory@evil.example",
            "Add my friends",
            cc="friend@evil.example",
            message_id="<x1@evil.example>",
            replying_to="<p1@customer.example>",
        )
    )
    run_pass(app)
    assert len(events(app, "unverified_sender")) == 1
    assert active(app) == []


# --- staff manage the list ---------------------------------------------------------------------


def test_cc_commands_add_remove_and_none_in_order_and_the_answer_follows(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink, cc=MARCO)
    imap_server.append(
        staff_reply(
            notice,
            f"#cc add eva@customer.example, Bo <bo@partner.example>\n#cc remove {MARCO}\n\n"
            + ANSWER,
        )
    )
    run_pass(app)
    assert active(app) == ["bo@partner.example", "eva@customer.example"]
    answer = to(smtp_sink.wait_for(3), ADA)[-1]
    cc = sorted(a.addr_spec for a in answer.message["Cc"].addresses)
    assert cc == ["bo@partner.example", "eva@customer.example"]
    assert MARCO not in answer.recipients
    changes = [e.data for e in events(app, "participants_changed")][1:]
    assert changes == [
        {
            "by": ALICE,
            "via": "mail",
            "added": ["eva@customer.example", "bo@partner.example"],
            "removed": [],
        },
        {"by": ALICE, "via": "mail", "added": [], "removed": [MARCO]},
    ]

    # Ada copies Marco again: removed by staff, he stays removed.
    imap_server.append(
        customer(
            ADA,
            "Marco should know too.",
            cc=MARCO,
            message_id="<p2@customer.example>",
            replying_to="<p1@customer.example>",
        )
    )
    run_pass(app)
    assert MARCO not in active(app)
    assert events(app, "participants_changed")[-1].data["skipped"][0]["address"] == MARCO

    # #cc none, then staff add Marco again (re-add).
    imap_server.append(staff_reply(notice, f"#cc none\n#cc add {MARCO}\n#note\nonly Marco now"))
    run_pass(app)
    assert active(app) == [MARCO]


def test_cc_adding_our_own_or_staff_addresses_is_refused_and_changes_nothing(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink, cc=MARCO)
    imap_server.append(
        staff_reply(notice, f"#cc add bob@shop.example, sales+x@shop.example\n#cc remove {MARCO}")
    )
    imap_server.append(staff_reply(notice, "#cc add support+t5@shop.example\nHi"))
    run_pass(app)
    assert active(app) == [MARCO]
    refused = events(app, "staff_commands_refused")
    assert len(refused) == 2
    assert "bob@shop.example is a staff address" in refused[0].data["errors"][0]
    errors = to(smtp_sink, ALICE)
    assert errors and "cannot be a participant" in body(errors[0])


def test_close_tells_the_requester_and_copies_the_participants(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink, cc=MARCO)
    imap_server.append(staff_reply(notice, "#close"))
    run_pass(app)
    closed = to(smtp_sink.wait_for(3), MARCO)
    assert len(closed) == 1 and sorted(closed[0].recipients) == [ADA, MARCO]
    assert closed[0].message["Auto-Submitted"] == "auto-generated"


def test_the_command_line_adds_removes_and_shows_participants(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    open_ticket(app, imap_server, smtp_sink, cc=MARCO)
    out = io.StringIO()
    cc_ticket(app, 1000, [Address("Eva", "eva@customer.example")], [Address("", MARCO)], False, out)
    assert out.getvalue() == "ticket #1000: copied Eva <eva@customer.example>\n"
    with pytest.raises(MailbridgeError, match="alice@shop.example is a staff address"):
        cc_ticket(app, 1000, [Address("", ALICE)], [], False, io.StringIO())
    shown = io.StringIO()
    reports.show_ticket(app, 1000, True, shown)
    document = json.loads(shown.getvalue())
    assert document["participants"] == [
        {
            "address": "eva@customer.example",
            "name": "Eva",
            "added_by": "command line",
            "added_at": document["participants"][0]["added_at"],
        }
    ]
    text = io.StringIO()
    reports.show_ticket(app, 1000, False, text)
    assert "participants (Cc): eva@customer.example" in text.getvalue()
    last = events(app, "participants_changed")[-2:]
    assert [e.data["via"] for e in last] == ["command line", "command line"]
    assert [e.data["removed"] for e in last] == [[MARCO], []]
    cc_ticket(app, 1000, [], [], True, out)
    assert active(app) == []


# --- hostile senders ---------------------------------------------------------------------------


def test_a_forged_staff_sender_cannot_use_cc(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = open_ticket(app, imap_server, smtp_sink, cc="")
    forged = staff_reply(notice, "#cc add x@evil.example\nDone.", to_address="support@shop.example")
    imap_server.append(forged)
    run_pass(app)
    assert active(app) == []
    assert "staff_unproven" in [e.type for e in events(app, "staff_unproven")]
    assert not to(smtp_sink, "x@evil.example")


def test_5000_addresses_in_cc_make_at_most_twenty_participants(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    crowd = ", ".join(f"v{i}@victims.example" for i in range(5000))
    notice = open_ticket(app, imap_server, smtp_sink, cc=crowd)
    assert len(active(app)) == 20
    joined = events(app, "participants_changed")
    assert len(joined) == 1
    # core.addresses reads 1,000 addresses of a header; of those, 20 join.
    assert len(joined[0].data["added"]) == 20 and joined[0].data["skipped_count"] == 980
    assert len(joined[0].data["skipped"]) == 20
    imap_server.append(staff_reply(notice, ANSWER))
    run_pass(app)
    answer = to(smtp_sink.wait_for(3), ADA)[-1]
    assert len(answer.recipients) == 21


def test_a_display_name_with_cr_lf_cannot_add_headers_to_the_answer(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    name = "=?utf-8?q?Marco=0D=0ABcc=3A_victim=40evil=2Eexample=0D=0AX-Evil=3A_1?="
    notice = open_ticket(app, imap_server, smtp_sink, cc=f"{name} <{MARCO}>")
    imap_server.append(staff_reply(notice, ANSWER))
    run_pass(app)
    answer = to(smtp_sink.wait_for(3), MARCO)[0]
    assert sorted(answer.recipients) == [ADA, MARCO]
    assert answer.message["Bcc"] is None and answer.message["X-Evil"] is None
    assert [a.addr_spec for a in answer.message["Cc"].addresses] == [MARCO]
    assert "victim@evil.example" not in answer.recipients
