"""Forward on behalf on the real processing path, on SQLite and PostgreSQL: a proven staff
member's forward (inline or attached) or `#requester` opens the ticket for the customer;
a forged staff sender, or a hostile forwarded From, opens nothing on anyone's behalf."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.db import queries
from mailbridge.db.models import Article, AttachmentRecord, InboundMessage
from mailbridge.tickets import participants
from tests.support.builders import mail
from tests.support.sla_world import START, World, make_world, text_of
from tests.support.staff_world import ADA, ALICE, SIGNED_STAFF

pytestmark = pytest.mark.db

PROOF = {"Authentication-Results": "mx.shop.example; dkim=pass header.d=shop.example"}
GMAIL = """{top}

Alice Bianchi | Shop
+39 02 1234

---------- Forwarded message ---------
From: Ada Lovelace <{sender}>
Date: Mon, 23 Nov 2026 at 10:02
Subject: Printer on fire
To: Alice Bianchi <alice@shop.example>


Hello Alice,
my printer is on fire. What now?

Ada
"""
OUTLOOK_IT = """{top}

-----Messaggio originale-----
Da: Ada Lovelace <{sender}>
Inviato: lunedì 23 novembre 2026 10:02
A: Alice Bianchi <alice@shop.example>
Oggetto: Stampante in fiamme

Buongiorno Alice,
la mia stampante è in fiamme. Cosa faccio?

Ada
"""


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(tmp_path, database_url, staff=SIGNED_STAFF)
    yield made
    made.app.close()


def staff_mail(
    body: str,
    subject: str = "Fwd: Printer on fire",
    *,
    sender: str = f"Alice Bianchi <{ALICE}>",
    headers: dict[str, str] | None = PROOF,
    attach: EmailMessage | None = None,
    files: dict[str, bytes] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@shop.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(START)
    msg["Message-ID"] = f"<fwd{abs(hash(body))}@shop.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for name, data in (files or {}).items():
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    if attach is not None:
        msg.add_attachment(attach)
    return msg.as_bytes()


def articles(world: World) -> list[Article]:
    with world.app.sessions() as session:
        return list(session.scalars(select(Article).order_by(Article.id)))


def event_data(world: World, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in world.events(kind)]


def recipients(world: World, kind: str) -> list[str]:
    found = []
    for row in world.mails(kind):
        message = message_from_bytes(row.raw, policy=email_policy.default)
        found.append(str(message["To"]))
    return found


def test_an_inline_forward_opens_the_ticket_for_the_customer(world: World) -> None:
    world.receive(staff_mail(GMAIL.format(top="Can you take care of her?", sender=ADA)))

    ticket = world.ticket()
    assert (ticket.requester_address, ticket.requester_name) == (ADA, "Ada Lovelace")
    assert ticket.subject == "Printer on fire"
    assert ticket.assignee == ALICE
    first, note = articles(world)[:2]
    assert (first.author_kind, first.from_address, first.internal) == ("customer", ADA, False)
    assert first.text_body.startswith("Hello Alice,\nmy printer is on fire.")
    assert (note.author_kind, note.internal, note.from_address) == ("staff", True, ALICE)
    assert note.text_body == "Can you take care of her?"  # signature gone
    [event] = event_data(world, "forwarded_on_behalf")
    assert event["by"] == ALICE and event["via"] == "mail" and event["proof"] == "dkim"
    assert (event["how"], event["original_sender"]) == ("gmail", ADA)
    assert event["article_id"] == first.id and event["note_article_id"] == note.id
    assert recipients(world, "ack") == [ADA]
    assert recipients(world, "notification") == [ALICE]  # the assignee, with a reply token


def test_an_italian_outlook_forward_keeps_the_customers_language(world: World) -> None:
    world.receive(staff_mail(OUTLOOK_IT.format(top="Te la passo.", sender=ADA), "I: Stampante"))

    ticket = world.ticket()
    assert ticket.requester_address == ADA and ticket.subject == "Stampante in fiamme"
    assert ticket.language == "it"
    subject, _ = text_of(world.mails("ack")[0])
    assert "[#1000]" in subject


def test_an_attached_original_brings_its_sender_text_and_files(world: World) -> None:
    inner = EmailMessage()
    inner["From"] = f"Ada Lovelace <{ADA}>"
    inner["To"] = ALICE
    inner["Subject"] = "Invoice wrong"
    inner["Message-ID"] = "<orig42@customer.example>"
    inner.set_content("The invoice is wrong, see the scan.\n")
    inner.add_attachment(b"%PDF scan", maintype="application", subtype="pdf", filename="scan.pdf")

    world.receive(staff_mail("#priority high\n#tag billing\nPlease check.", attach=inner))

    ticket = world.ticket()
    assert (ticket.requester_address, ticket.subject) == (ADA, "Invoice wrong")
    assert (ticket.priority, ticket.assignee) == ("high", ALICE)
    first, note = articles(world)[:2]
    assert first.message_id == "orig42@customer.example" and first.from_address == ADA
    assert note.text_body == "Please check."
    with world.app.sessions() as session:
        names = session.scalars(
            select(AttachmentRecord.filename).where(AttachmentRecord.article_id == first.id)
        ).all()
        assert list(names) == ["scan.pdf"]
        assert queries.ticket_tags(session, ticket.id) == ["billing"]
    assert event_data(world, "forwarded_on_behalf")[0]["how"] == "rfc822"
    assert recipients(world, "ack") == [ADA]


def test_requester_overrides_the_detected_sender(world: World) -> None:
    body = GMAIL.format(top="#requester Boss <boss@customer.example>\nHer boss wants the answer.",
                        sender=ADA)  # fmt: skip
    world.receive(staff_mail(body))

    ticket = world.ticket()
    assert ticket.requester_address == "boss@customer.example"
    assert articles(world)[0].from_address == ADA  # the article is still Ada's mail
    assert event_data(world, "forwarded_on_behalf")[0]["how"] == "#requester"
    assert recipients(world, "ack") == ["boss@customer.example"]  # minimal: no name


def test_noack_keeps_the_customer_unacknowledged(world: World) -> None:
    world.receive(staff_mail(GMAIL.format(top="#noack\nJust for the record.", sender=ADA)))

    assert world.ticket().requester_address == ADA
    assert world.mails("ack") == []
    [suppressed] = event_data(world, "ack_suppressed")
    assert suppressed["check"] == "noack"


def test_a_routing_rule_reads_the_original_and_its_assignee_wins(
    tmp_path: Path, database_url: str
) -> None:
    rule = {
        "name": "fire",
        "when": {"subject": {"words": ["fire"]}, "from_domain": "customer.example"},
        "then": {"assignee": "bob@shop.example", "priority": "urgent"},
    }
    world = make_world(tmp_path, database_url, staff=SIGNED_STAFF, rule=[rule])
    try:
        world.receive(staff_mail(GMAIL.format(top="Urgent one.", sender=ADA)))
        ticket = world.ticket()
        assert (ticket.assignee, ticket.priority) == ("bob@shop.example", "urgent")
    finally:
        world.app.close()


def test_requester_alone_writes_to_the_customer_first(world: World) -> None:
    body = "#requester ada@customer.example\nHello Ada,\n\nas promised on the phone: done.\n"
    world.receive(staff_mail(body, "Your new printer"))

    ticket = world.ticket()
    assert (ticket.requester_address, ticket.subject, ticket.status) == (
        ADA,
        "Your new printer",
        "waiting",
    )
    assert ticket.assignee == ALICE and ticket.first_responded_at is not None
    [article] = articles(world)
    assert (article.author_kind, article.direction, article.internal) == ("staff", "out", False)
    assert world.mails("ack") == []
    [reply] = world.mails("reply")
    assert recipients(world, "reply") == [ADA]
    _, text = text_of(reply)
    assert "as promised on the phone: done." in text and "#requester" not in text
    assert event_data(world, "forwarded_on_behalf")[0]["outbox_id"] == reply.id


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (GMAIL.format(top="From Bob.", sender="bob@shop.example"), "staff address"),
        ("#requester bob@shop.example\nHi Bob", "staff address"),
        (GMAIL.format(top="#close\nDone.", sender=ADA), "#close"),
        (GMAIL.format(top='#faq save "Printer fire"\nCall us.', sender=ADA), "#faq"),
        ("#requester ada@customer.example\n", "nothing for the customer"),
    ],
    ids=["staff-sender", "staff-requester", "close", "faq-save", "no-text"],
)
def test_what_opens_nothing_on_anyones_behalf_is_the_staff_members_own_and_told(
    world: World, body: str, why: str
) -> None:
    world.receive(staff_mail(body))

    ticket = world.ticket()
    assert ticket.requester_address == ALICE
    assert world.mails("ack") == [] and world.mails("reply") == []
    [refused] = event_data(world, "forward_refused")
    assert why in "; ".join(refused["errors"]) and refused["by"] == ALICE
    [told] = world.mails("staff_error")
    assert recipients(world, "staff_error") == [f"Alice Bianchi <{ALICE}>"]
    subject, text = text_of(told)
    assert "Not opened for the customer" in subject and why in text
    assert event_data(world, "forwarded_on_behalf") == []


def test_a_forward_of_our_own_mail_opens_nothing_for_ourselves(world: World) -> None:
    world.receive(staff_mail(GMAIL.format(top="Loop?", sender="support@shop.example")))

    assert world.ticket().requester_address == ALICE
    assert event_data(world, "forwarded_on_behalf") == []
    assert all("support@shop.example" not in r for r in recipients(world, "ack"))
    body = "#requester support+x@shop.example\nHello"
    world.receive(staff_mail(body, "Loop"))
    assert "our own addresses" in event_data(world, "forward_refused")[0]["errors"][0]
    assert all("support" not in r for r in recipients(world, "reply"))


@pytest.mark.parametrize(
    "headers",
    [None, {"Authentication-Results": "mx.attacker.example; dkim=pass header.d=shop.example"}],
    ids=["no-proof", "untrusted-proof"],
)
def test_a_forged_staff_forward_is_customer_mail_from_that_address(
    world: World, headers: dict[str, str] | None
) -> None:
    body = GMAIL.format(top="#requester victim@else.example\nOpen this for her.", sender=ADA)
    world.receive(staff_mail(body, headers=headers))

    ticket = world.ticket()
    assert ticket.requester_address == ALICE  # the claimed From, as any customer
    assert ticket.assignee is None
    assert event_data(world, "forwarded_on_behalf") == []
    assert event_data(world, "staff_unproven")
    assert all("victim" not in r and ADA not in r for r in recipients(world, "ack"))


def test_a_customers_forward_is_just_their_ticket(world: World) -> None:
    body = GMAIL.format(top="See below, my colleague wrote this.", sender="colleague@x.example")
    world.receive(staff_mail(body, sender=f"Ada <{ADA}>", headers=None))

    assert world.ticket().requester_address == ADA
    assert event_data(world, "forwarded_on_behalf") == []


def test_a_hostile_forwarded_from_injects_no_header(world: World) -> None:
    body = (
        "Please.\n\n---------- Forwarded message ---------\n"
        "From: victim@x.example>\r\nBcc: a@b.example\nSubject: hi\n\nbody\n"
    )
    world.receive(staff_mail(body, "Fwd: hi"))

    for row in world.mails():
        head = row.raw.split(b"\r\n\r\n", 1)[0].lower()
        assert b"bcc:" not in head and b"a@b.example" not in head
    with world.app.sessions() as session:
        assert session.scalars(select(InboundMessage.state)).all() == ["processed"]


def test_whom_the_customer_copied_joins_and_cc_above_the_forward_adds_or_is_refused(
    world: World,
) -> None:
    copied = GMAIL.replace(
        "To: Alice Bianchi <alice@shop.example>",
        "To: Alice Bianchi <alice@shop.example>\nCc: Marco Rossi <marco@customer.example>",
    )
    world.receive(staff_mail(copied.format(top="#cc add boss@customer.example\nHers.", sender=ADA)))

    with world.app.sessions() as session:
        joined = sorted(p.address for p in participants.active(session, world.ticket()))
    assert joined == ["boss@customer.example", "marco@customer.example"]
    assert ALICE not in joined  # staff, to whom the customer wrote, never a participant

    world.receive(
        staff_mail(
            GMAIL.format(top="#cc add bob@shop.example", sender="zoe@customer.example"),
            subject="Fwd: Another one",
        )
    )
    refused = event_data(world, "forward_refused")
    assert refused and any("bob@shop.example" in e for e in refused[-1]["errors"])
    assert world.ticket(1001).requester_address == ALICE  # the staff member's own ticket


ADA_WROTE = "Hello Alice,\nmy printer is on fire. What now? It smokes since this morning.\n\nAda\n"


def test_a_forward_of_mail_already_on_a_ticket_joins_it_as_a_note(world: World) -> None:
    world.receive(mail(f"Ada Lovelace <{ADA}>", "Printer on fire", ADA_WROTE, to=ALICE))
    forwarded = GMAIL.replace("Hello Alice,\nmy printer is on fire. What now?\n\nAda\n", ADA_WROTE)

    world.receive(staff_mail(forwarded.format(top="She wrote to me too; mine.", sender=ADA)))

    ticket = world.ticket()
    assert [t.number for t in world.tickets()] == [1000]  # no second ticket
    customer, note = articles(world)
    assert (note.internal, note.text_body, note.from_address) == (
        True,
        "She wrote to me too; mine.",
        ALICE,
    )
    assert ticket.assignee == ALICE
    (joined,) = event_data(world, "forward_joined")
    assert (joined["by"], joined["via"], joined["how"]) == (ALICE, "mail", "gmail")
    assert recipients(world, "ack") == [ADA]  # once, for her own mail


def test_an_attached_original_already_on_a_ticket_is_known_by_its_message_id(
    world: World,
) -> None:
    world.receive(
        mail(f"Ada <{ADA}>", "Invoice wrong", "Wrong.", message_id="<o7@customer.example>")
    )
    inner = EmailMessage()
    inner["From"] = f"Ada <{ADA}>"
    inner["Subject"] = "Invoice wrong"
    inner["Message-ID"] = "<o7@customer.example>"
    inner.set_content("Wrong.\n")

    world.receive(staff_mail("#priority high", attach=inner))

    assert [t.number for t in world.tickets()] == [1000]
    assert world.ticket().priority == "high"
    assert event_data(world, "forward_joined")[0]["how"] == "rfc822"


def test_a_different_mail_of_the_same_customer_is_a_ticket_of_its_own(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire", ADA_WROTE))
    other = GMAIL.replace(
        "Hello Alice,\nmy printer is on fire. What now?\n",
        "Hello Alice,\nnow the scanner jams on every page, another problem entirely.\n",
    )
    world.receive(staff_mail(other.format(top="Another one.", sender=ADA)))

    assert [t.requester_address for t in world.tickets()] == [ADA, ADA]
    assert not event_data(world, "forward_joined")


def test_requester_opens_a_ticket_even_for_mail_already_on_one(world: World) -> None:
    world.receive(mail(f"Ada <{ADA}>", "Printer on fire", ADA_WROTE))
    forwarded = GMAIL.replace("Hello Alice,\nmy printer is on fire. What now?\n\nAda\n", ADA_WROTE)
    top = "#requester boss@customer.example\nFor her boss."
    world.receive(staff_mail(forwarded.format(top=top, sender=ADA)))

    assert [t.requester_address for t in world.tickets()] == [ADA, "boss@customer.example"]
