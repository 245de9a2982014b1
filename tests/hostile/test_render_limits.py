"""Mail too big for a reply: a 2 MB subject, a 3 MB body, a 2 MB staff answer, 50,000
attachments, a 5,000-character name. Each is a ticket like any other, and its
acknowledgement and notification go out shortened, saying so; nothing is quarantined.
What the parser did not read at all (parts past its cap) the notification names."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailbridge.db.models import AttachmentRecord
from mailbridge.demo.smtp_sink import ReceivedMail
from tests.hostile.conftest import MX, World
from tests.support.builders import mail

pytestmark = pytest.mark.integration

# These tests read the customer's words in the acknowledgement: its full form, as an
# authenticated sender gets it (tests/hostile/test_acks.py covers the minimal one).
WORLD_SECTIONS = {"tickets": {"ack_unauthenticated": "full"}}

CUSTOMER = "ada@customer.example"
TEAM = "team@shop.example"
SHORTENED = "[… shortened]"


def raw_mail(
    subject: bytes,
    *,
    sender: bytes = b"Ada <ada@customer.example>",
    message_id: bytes = b"<big@customer.example>",
    body: bytes = b"Hello\r\n",
) -> bytes:
    return (
        b"From: "
        + sender
        + b"\r\nTo: support@shop.example\r\nSubject: "
        + subject
        + b"\r\nMessage-ID: "
        + message_id
        + b"\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\n"
        + body
    )


def ordinary() -> bytes:
    return mail(
        "Bob <bob@customer.example>", "Where is my order?", message_id="<ordinary@customer.example>"
    )


def body(received: ReceivedMail) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def assert_nothing_quarantined(world: World) -> None:
    assert [(m.state, m.last_error) for m in world.inbound()] == [("processed", None)] * len(
        world.inbound()
    )


def assert_the_ordinary_mail_is_answered(world: World) -> None:
    assert len(world.sent_to("bob@customer.example")) == 1
    assert any("Where is my order?" in t.subject for t in world.tickets())


def only(mails: list[ReceivedMail]) -> ReceivedMail:
    assert len(mails) == 1, mails
    return mails[0]


def test_a_2_mb_subject_is_a_ticket_with_a_shortened_acknowledgement(world: World) -> None:
    # Words of 990 characters on folded lines: the standard library's header parser, which
    # the embedded IMAP server uses, takes minutes over 400,000 short words.
    subject = b"\r\n ".join([b"y" * 990] * 2100)
    world.deliver(raw_mail(subject), ordinary())
    world.run()

    assert_nothing_quarantined(world)
    big = world.ticket(1000)
    # the ticket keeps what fits its column, marked; the raw mail keeps every byte
    assert big.subject.startswith("yyyy") and big.subject.endswith("…")
    assert len(big.subject) <= 998 and len(world.inbound()[0].raw) > 2_000_000
    ack = only(world.sent_to(CUSTOMER))
    assert ack.message["Subject"].startswith("Re: [#1000] yyyy")
    assert ack.message["Subject"].endswith(SHORTENED)
    assert len(ack.raw) < 20_000
    notice = only([m for m in world.sent_to(TEAM) if "[#1000]" in m.message["Subject"]])
    assert notice.message["Subject"].endswith(SHORTENED)
    assert_the_ordinary_mail_is_answered(world)


def test_a_3_mb_body_is_notified_shortened_and_says_so(world: World) -> None:
    text = "This line of the customer's message is long enough to matter.\n" * 50_000
    world.deliver(mail(body=text, message_id="<long@customer.example>"), ordinary())
    world.run()

    assert_nothing_quarantined(world)
    assert len(world.articles(1000)[0].text_body) > 3_000_000
    ack = only(world.sent_to(CUSTOMER))
    assert "> This line of the customer's message" in body(ack)
    notice = body(only([m for m in world.sent_to(TEAM) if "[#1000]" in m.message["Subject"]]))
    assert 20_000 < len(notice) < 30_000
    assert SHORTENED in notice
    assert_the_ordinary_mail_is_answered(world)


def test_a_2_mb_staff_answer_reaches_the_customer_shortened(world: World) -> None:
    world.deliver(mail(message_id="<question@customer.example>"))
    world.run()
    answer = "Thank you for your patience; here is everything we know. " * 35_000
    world.deliver(
        mail(
            "Alice Bianchi <alice@shop.example>",
            "Re: [#1000] Printer on fire",
            answer,
            message_id="<answer@shop.example>",
            headers={"Authentication-Results": f"{MX}; dkim=pass header.d=shop.example"},
        )
    )
    world.run()

    assert_nothing_quarantined(world)
    reply = world.sent_to(CUSTOMER)[-1]
    text = body(reply)
    assert text.count("Thank you for your patience") > 1_000
    assert SHORTENED in text and len(text) < 110_000
    assert world.ticket(1000).status == "waiting"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_50000_attachments_are_a_ticket_whose_notification_lists_a_hundred_and_the_cut(
    world: World,
) -> None:
    parts = [b"--B\r\nContent-Type: text/plain\r\n\r\nAll the files, attached.\r\n"]
    parts += [
        b"--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
        b"attachment; filename=file%d.bin\r\n\r\nx\r\n" % i
        for i in range(50_000)
    ]
    raw = raw_mail(b"Files", body=b"".join(parts) + b"--B--\r\n").replace(
        b"\r\n\r\n",
        b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n",
        1,
    )
    world.imap.append_many([raw, ordinary()], timeout=120)  # the server parses it: ~20 s
    world.run()

    assert_nothing_quarantined(world)
    assert only(world.sent_to(CUSTOMER)).message["Subject"] == "Re: [#1000] Files"
    notice = only([m for m in world.sent_to(TEAM) if "[#1000]" in m.message["Subject"]])
    attached = list(notice.message.iter_attachments())
    assert len(attached) == 100
    text = body(notice)
    assert "file99.bin (1 B)" in text and "file100.bin" not in text
    # The parser reads 1,000 parts (ParseLimits.max_parts): the text and 999 files.
    assert "… and 899 more (list shortened)" in text
    assert (
        "Not all of this mail could be read:\n  - more than 1000 MIME parts: the parts "
        "after the 1000th were not read"
    ) in text
    with world.app.sessions() as session:
        stored = session.scalar(select(func.count()).select_from(AttachmentRecord))
    assert stored == 999
    assert_the_ordinary_mail_is_answered(world)


def test_a_5000_character_name_is_stored_and_greeted_shortened(world: World) -> None:
    name = b"Ann " + b"N" * 5000
    world.deliver(raw_mail(b"Hello", sender=name + b" <ann@customer.example>"), ordinary())
    world.run()

    assert_nothing_quarantined(world)
    ticket = world.ticket(1000)
    assert ticket.requester_name.startswith("Ann NNN") and ticket.requester_name.endswith(SHORTENED)
    assert len(ticket.requester_name) <= 255
    ack = only(world.sent_to("ann@customer.example"))
    assert "Hello Ann NNNN" in body(ack) and SHORTENED in body(ack)
    assert_the_ordinary_mail_is_answered(world)
