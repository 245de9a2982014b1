"""Ada's ticket and replies to it, written as a hostile sender would (headers and a From line
in raw bytes, if need be), and the team's reply token read from its notification."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime

from mailbridge.demo.smtp_sink import ReceivedMail
from tests.hostile.conftest import START, World
from tests.support.builders import mail

CUSTOMER = "ada@customer.example"
ALICE = "alice@shop.example"


def open_ticket(world: World) -> ReceivedMail:
    """Ada writes; returns the team's notification (with its reply token)."""
    world.deliver(mail(f"Ada <{CUSTOMER}>", "Printer on fire", message_id="<p1@customer.example>"))
    world.run()
    notices = world.sent_to("team@shop.example")
    assert len(notices) == 1 and world.ticket(1000).status == "new"
    return notices[0]


def reply(
    sender: str,
    text: str,
    *,
    to: str = "support@shop.example",
    subject: str = "Re: [#1000] Printer on fire",
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    raw_from: bytes | None = None,
    raw_headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(START)
    msg["Message-ID"] = f"<h{abs(hash((sender, text, to)))}@attacker.example>"
    if in_reply_to:
        msg["In-Reply-To"] = msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text + "\n")
    head, _, rest = msg.as_bytes().partition(b"\n")
    assert head.startswith(b"From:")
    # Written as bytes: the email package would decode or re-fold what an attacker sends.
    lines = [f"{name}: {value}".encode() for name, value in (raw_headers or {}).items()]
    return b"\n".join([b"From: " + (raw_from or head[6:]), *lines, rest])


def token_of(notice: ReceivedMail) -> str:
    return str(notice.message["Reply-To"].addresses[0].addr_spec)
