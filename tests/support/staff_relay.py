"""A customer's ticket and a staff member's answer to its notification, through the
daemon on the embedded servers: the builders the staff-relay and rating tests share."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import select

from mailbridge.app import App
from mailbridge.db.models import Event, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from tests.support.builders import mail
from tests.support.served_app import body, run_pass, to
from tests.support.sla_world import START
from tests.support.staff_world import ALICE

CUSTOMER = "ada@customer.example"
NEW_TEXT = "Hello Ada,\n\na new printer is on its way.\n\nSorry for the trouble."


def ticket(app: App, number: int = 1000) -> Ticket:
    with app.sessions() as session:
        return session.scalars(select(Ticket).where(Ticket.number == number)).one()


def events(app: App, number: int = 1000) -> list[Event]:
    with app.sessions() as session:
        query = (
            select(Event)
            .join(Ticket, Ticket.id == Event.ticket_id)
            .where(Ticket.number == number)
            .order_by(Event.id)
        )
        return list(session.scalars(query))


def open_ticket(
    app: App, imap: EmbeddedImapServer, sink: SmtpSink, attachment: bytes | None = None
) -> ReceivedMail:
    """A customer writes; returns the notification the team got."""
    raw = mail(f"Ada Lovelace <{CUSTOMER}>", "Printer on fire", message_id="<p1@customer.example>")
    if attachment is not None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = (
            f"Ada <{CUSTOMER}>",
            "support@shop.example",
            "Printer on fire",
        )
        msg["Message-ID"] = "<p1@customer.example>"
        msg["Date"] = format_datetime(START)
        msg.set_content("Hello,\nmy printer is on fire, photo attached.\n")
        msg.add_attachment(attachment, maintype="image", subtype="jpeg", filename="fire.jpg")
        raw = msg.as_bytes()
    imap.append(raw)
    run_pass(app)
    sink.wait_for(2)
    notices = to(sink, "team@shop.example")
    assert len(notices) == 1
    return notices[0]


def quoted(style: str, notification: ReceivedMail) -> str:
    """The notification quoted the way common clients quote."""
    original = body(notification)
    lines = "\n".join(f"> {line}" if line else ">" for line in original.splitlines())
    if style == "gmail":
        return "On Mon, 23 Nov 2026 at 10:00, Shop Support <support@shop.example> wrote:\n" + lines
    if style == "thunderbird":
        return f"On 23/11/2026 10:00, Shop Support wrote:\n{lines}"
    if style == "outlook":
        return (
            "________________________________\nFrom: Shop Support <support@shop.example>\n"
            "Sent: Monday, November 23, 2026 10:00 AM\nTo: Team <team@shop.example>\n"
            f"Subject: {notification.message['Subject']}\n\n{original}"
        )
    if style == "outlook-it":
        return (
            "________________________________\nDa: Shop Support <support@shop.example>\n"
            "Inviato: lunedì 23 novembre 2026 10:00\nA: Team <team@shop.example>\n"
            f"Oggetto: {notification.message['Subject']}\n\n{original}"
        )
    raise ValueError(style)


def staff_reply(
    notification: ReceivedMail,
    text: str,
    *,
    sender: str = f"Alice Bianchi <{ALICE}>",
    style: str = "gmail",
    to_address: str | None = None,
    headers: dict[str, str] | None = None,
    attachment: bytes | None = None,
    in_reply_to: bool = True,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to_address or notification.message["Reply-To"]
    msg["Subject"] = "Re: " + notification.message["Subject"]
    msg["Date"] = format_datetime(START + timedelta(hours=1))
    msg["Message-ID"] = f"<r{abs(hash((text, style, sender)))}@shop.example>"
    if in_reply_to:
        msg["In-Reply-To"] = notification.message["Message-ID"]
        msg["References"] = notification.message["Message-ID"]
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(f"{text}\n\n{quoted(style, notification)}\n")
    if attachment is not None:
        msg.add_attachment(
            attachment, maintype="application", subtype="pdf", filename="invoice.pdf"
        )
    return msg.as_bytes()
