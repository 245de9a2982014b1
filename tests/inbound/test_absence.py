"""Staff absence end to end through the daemon (embedded IMAP server, SMTP sink, SQLite and
PostgreSQL): a staff member's own auto-reply to a notification marks them away, their
tickets' notifications go to the team meanwhile, their first real mail brings them back."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.clock import FrozenClock
from mailbridge.core.staff import TEAM, check_token, find_token
from mailbridge.db.models import Event, Outbox, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.inbound.identity import token_address
from mailbridge.tickets.absence import away_until, end_of_day
from tests.support.builders import mail
from tests.support.served_app import app, clock, run_pass, to
from tests.support.staff_world import ALICE, BOB, SIGNED_STAFF

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

CUSTOMER = "ada@customer.example"
TEAM_ADDRESS = "team@shop.example"


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"staff": SIGNED_STAFF, "calendar": {"timezone": "Europe/Rome"}}


def assign(app: App, address: str) -> None:
    """As `#assign` or a routing rule would have."""
    with app.transaction() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == 1000)).one()
        ticket.assignee = address


def customer_writes(app: App, imap: EmbeddedImapServer, text: str) -> None:
    imap.append(
        mail(f"Ada <{CUSTOMER}>", "Re: Printer on fire", text, in_reply_to="<p1@customer.example>")
    )
    run_pass(app)


def alice_has_her_ticket(app: App, imap: EmbeddedImapServer, sink: SmtpSink) -> ReceivedMail:
    """Ada opens #1000, Alice is its assignee, Ada writes again: Alice's notification."""
    imap.append(mail(f"Ada <{CUSTOMER}>", "Printer on fire", message_id="<p1@customer.example>"))
    run_pass(app)
    assign(app, ALICE)
    customer_writes(app, imap, "Any news?")
    notices = to(sink.wait_for(3), ALICE)
    assert len(notices) == 1
    return notices[0]


def answer(
    notice: ReceivedMail | None,
    app: App,
    text: str,
    *,
    sender: str = ALICE,
    to_address: str | None = None,
    automatic: bool = True,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Alice Bianchi <{sender}>"
    msg["To"] = to_address or (notice.message["Reply-To"] if notice else "support@shop.example")
    msg["Subject"] = ("Automatic reply: " if automatic else "Re: ") + "Printer on fire"
    msg["Date"] = format_datetime(app.clock.now())
    msg["Message-ID"] = f"<a{abs(hash((text, sender, automatic)))}@shop.example>"
    if notice is not None:
        msg["In-Reply-To"] = msg["References"] = notice.message["Message-ID"]
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(text + "\n")
    return msg.as_bytes()


def now_away(app: App, address: str = ALICE) -> datetime | None:
    with app.sessions() as session:
        return away_until(session, address, app.clock.now())


def general_events(app: App) -> list[Event]:
    with app.sessions() as session:
        query = select(Event).where(Event.ticket_id.is_(None)).order_by(Event.id)
        return list(session.scalars(query))


def replies_relayed(app: App) -> int:
    with app.sessions() as session:
        return len(session.scalars(select(Outbox).where(Outbox.kind == "reply")).all())


def test_an_out_of_office_marks_alice_away_and_the_team_covers_until_her_first_real_mail(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = alice_has_her_ticket(app, imap_server, smtp_sink)
    imap_server.append(answer(notice, app, "I am out of office, back on 12 January."))
    run_pass(app)

    zone = app.config.calendar.zone
    assert now_away(app) == end_of_day(date(2027, 1, 12), zone)
    away = general_events(app)[-1]
    assert away.type == "staff_away"
    assert away.data["source"] == "auto_reply" and away.data["by"] == ALICE
    assert away.data["via"] == "mail"
    assert replies_relayed(app) == 0  # an auto-reply is never a staff answer
    assert len(to(smtp_sink, CUSTOMER)) == 1  # the acknowledgement only

    customer_writes(app, imap_server, "Hello? Anyone?")
    covered = to(smtp_sink.wait_for(4), TEAM_ADDRESS)[-1]
    assert "(Alice is away until 12 Jan)" in covered.message["Subject"]
    assert len(to(smtp_sink, ALICE)) == 1
    token = find_token(
        [covered.message["Reply-To"].addresses[0].addr_spec], {"support@shop.example"}
    )
    assert token is not None
    check = check_token(app.reply_secret, token, BOB, [ALICE, BOB], app.clock.now())
    assert check.audience == TEAM  # the team may answer it
    for received in to(smtp_sink, CUSTOMER):
        assert "away" not in received.raw.decode().lower()

    imap_server.append(
        answer(
            covered, app, "Hello Ada,\n\nI am back: a new printer is on its way.", automatic=False
        )
    )
    run_pass(app)
    assert now_away(app) is None
    back = general_events(app)[-1]
    assert (back.type, back.data["source"], back.data["by"]) == ("staff_back", "mail", ALICE)
    assert replies_relayed(app) == 1

    customer_writes(app, imap_server, "Thanks!")
    assert len(to(smtp_sink.wait_for(6), ALICE)) == 2
    assert "away" not in to(smtp_sink, ALICE)[-1].message["Subject"]


def test_without_a_return_date_alice_is_away_for_24_hours_after_her_last_auto_reply(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    notice = alice_has_her_ticket(app, imap_server, smtp_sink)
    imap_server.append(answer(notice, app, "I am out of the office with limited access."))
    run_pass(app)
    first = clock.now()
    assert now_away(app) == first + timedelta(hours=24)

    clock.advance(timedelta(hours=20))
    imap_server.append(answer(notice, app, "I am out of the office, really."))
    run_pass(app)
    assert now_away(app) == first + timedelta(hours=44)

    clock.advance(timedelta(hours=24, seconds=1))
    assert now_away(app) is None  # ended by itself
    customer_writes(app, imap_server, "Still waiting.")
    assert len(to(smtp_sink.wait_for(4), ALICE)) == 2


def test_a_later_undated_auto_reply_does_not_shorten_a_known_return(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = alice_has_her_ticket(app, imap_server, smtp_sink)
    imap_server.append(answer(notice, app, "Je serai de retour le 12 janvier."))
    run_pass(app)
    imap_server.append(answer(notice, app, "Out of office."))
    run_pass(app)
    assert now_away(app) == end_of_day(date(2027, 1, 12), app.config.calendar.zone)
    assert [e.type for e in general_events(app)] == ["staff_away"]


@pytest.mark.parametrize("forgery", ["token_of_bob", "no_token", "read_receipt", "customer"])
def test_a_forged_auto_reply_changes_nothing(
    forgery: str, app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = alice_has_her_ticket(app, imap_server, smtp_sink)
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == 1000)).one()
    raw = {
        "token_of_bob": lambda: answer(
            None,
            app,
            "Back on 12 January.",
            to_address=token_address(app, ticket, BOB, app.clock.now()),
        ),
        "no_token": lambda: answer(None, app, "Back on 12 January."),
        "read_receipt": lambda: _read_receipt(notice),
        "customer": lambda: answer(notice, app, "Back on 12 January.", sender=CUSTOMER),
    }[forgery]()
    imap_server.append(raw)
    run_pass(app)

    assert now_away(app) is None and now_away(app, BOB) is None
    assert now_away(app, CUSTOMER) is None
    assert general_events(app) == []
    assert replies_relayed(app) == 0


def _read_receipt(notice: ReceivedMail) -> bytes:
    """Alice's client's read receipt to her notification: read, not away."""
    raw = (
        f"From: Alice <{ALICE}>\r\nTo: {notice.message['Reply-To']}\r\n"
        "Subject: Read: Printer on fire back on 12 January\r\nMIME-Version: 1.0\r\n"
        f"In-Reply-To: {notice.message['Message-ID']}\r\nMessage-ID: <mdn1@shop.example>\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
        "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n--b--\r\n"
    )
    return raw.encode()


def test_a_notification_meant_for_an_away_assignee_without_a_team_address_still_goes_to_them(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    notice = alice_has_her_ticket(app, imap_server, smtp_sink)
    imap_server.append(answer(notice, app, "Back on 12 January."))
    run_pass(app)
    staff = app.config.staff.model_copy(update={"team_address": None})
    app.reconfigure(app.config.model_copy(update={"staff": staff}), app.templates)  # a reload
    customer_writes(app, imap_server, "Hello?")
    assert len(to(smtp_sink.wait_for(4), ALICE)) == 2
